//! Medians and bootstrap intervals of paired ratios, for the in-process A/B examples.
#![allow(dead_code)]

pub fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// The median of `ratios` and a bootstrap 95 % interval of it (fixed seed).
pub fn interval(ratios: &[f64]) -> (f64, f64, f64) {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut medians: Vec<f64> = (0..2000)
        .map(|_| {
            let mut pick: Vec<f64> = (0..ratios.len())
                .map(|_| ratios[(next() % ratios.len() as u64) as usize])
                .collect();
            median(&mut pick)
        })
        .collect();
    medians.sort_by(f64::total_cmp);
    (median(&mut ratios.to_vec()), medians[50], medians[1949])
}
