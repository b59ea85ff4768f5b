use super::*;
use tokio::io::duplex;

const T: Duration = Duration::from_millis(200);

#[tokio::test]
async fn a_message_round_trips_with_its_length() {
    let (mut a, mut b) = duplex(1024);
    assert!(write_message(&mut a, b"hello", T).await);
    assert_eq!(
        read_message(&mut b, T, T, 100).await,
        Some((b"hello".to_vec(), false))
    );
}

#[tokio::test]
async fn a_message_over_the_bound_is_not_read() {
    let (mut a, mut b) = duplex(1024);
    a.write_all(&[0x01, 0x00]).await.unwrap(); // 256 bytes announced
    assert_eq!(read_message(&mut b, T, T, 255).await, Some((vec![], true)));
}

#[tokio::test]
async fn silence_trickles_and_an_early_end_give_nothing() {
    // No length within the idle time.
    let (_a, mut b) = duplex(1024);
    assert_eq!(read_message(&mut b, T, T, 100).await, None);
    // A length, then the message never completes.
    let (mut a, mut b) = duplex(1024);
    a.write_all(&[0x00, 0x05, b'h']).await.unwrap();
    assert_eq!(read_message(&mut b, T, T, 100).await, None);
    // The stream ends inside the length.
    let (mut a, mut b) = duplex(1024);
    a.write_all(&[0x00]).await.unwrap();
    drop(a);
    assert_eq!(read_message(&mut b, T, T, 100).await, None);
}

#[tokio::test]
async fn a_message_longer_than_a_length_can_say_is_not_written() {
    let (mut a, _b) = duplex(1 << 17);
    assert!(!write_message(&mut a, &vec![0u8; 70_000], T).await);
}
