//! Typed handles into append-only arenas (naga-style): IR nodes refer to each other by index.

use std::fmt;
use std::marker::PhantomData;

/// An index into an [`Arena<T>`]. Copy, hashable, ordered; meaningless outside its arena.
pub struct Handle<T> {
    index: u32,
    _ty: PhantomData<fn() -> T>,
}

impl<T> Handle<T> {
    pub const fn from_index(index: usize) -> Self {
        Handle {
            index: index as u32,
            _ty: PhantomData,
        }
    }
    pub const fn index(self) -> usize {
        self.index as usize
    }
}
impl<T> Clone for Handle<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Handle<T> {}
impl<T> PartialEq for Handle<T> {
    fn eq(&self, o: &Self) -> bool {
        self.index == o.index
    }
}
impl<T> Eq for Handle<T> {}
impl<T> PartialOrd for Handle<T> {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl<T> Ord for Handle<T> {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.index.cmp(&o.index)
    }
}
impl<T> std::hash::Hash for Handle<T> {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.index.hash(h)
    }
}
impl<T> fmt::Debug for Handle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.index)
    }
}
impl<T> serde::Serialize for Handle<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.index)
    }
}
impl<'de, T> serde::Deserialize<'de> for Handle<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Handle {
            index: u32::deserialize(d)?,
            _ty: PhantomData,
        })
    }
}

/// Append-only storage addressed by [`Handle`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Arena<T> {
    items: Vec<T>,
}

impl<T> Default for Arena<T> {
    fn default() -> Self {
        Arena { items: Vec::new() }
    }
}

impl<T> Arena<T> {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn append(&mut self, value: T) -> Handle<T> {
        self.items.push(value);
        Handle::from_index(self.items.len() - 1)
    }
    pub fn len(&self) -> usize {
        self.items.len()
    }
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (Handle<T>, &T)> {
        self.items
            .iter()
            .enumerate()
            .map(|(i, v)| (Handle::from_index(i), v))
    }
}

impl<T: PartialEq> Arena<T> {
    /// Appends `value` unless an equal item exists; returns the handle of the stored item.
    /// Linear; front ends that intern many values keep their own index (see `UniqueArena`).
    pub fn fetch_or_append(&mut self, value: T) -> Handle<T> {
        match self.items.iter().position(|v| *v == value) {
            Some(i) => Handle::from_index(i),
            None => self.append(value),
        }
    }
}

impl<T> std::ops::Index<Handle<T>> for Arena<T> {
    type Output = T;
    fn index(&self, h: Handle<T>) -> &T {
        &self.items[h.index()]
    }
}

/// An arena that interns: equal values share one handle. Used for selectors, so that the
/// selector cache resolves each distinct selector once.
#[derive(Clone, Debug, serde::Serialize)]
pub struct UniqueArena<T: Eq + std::hash::Hash + Clone> {
    arena: Arena<T>,
    #[serde(skip)]
    index: std::collections::HashMap<T, Handle<T>>,
}

impl<T: Eq + std::hash::Hash + Clone> Default for UniqueArena<T> {
    fn default() -> Self {
        UniqueArena {
            arena: Arena::new(),
            index: Default::default(),
        }
    }
}

impl<T: Eq + std::hash::Hash + Clone> UniqueArena<T> {
    pub fn insert(&mut self, value: T) -> Handle<T> {
        if let Some(h) = self.index.get(&value) {
            return *h;
        }
        let h = self.arena.append(value.clone());
        self.index.insert(value, h);
        h
    }
    pub fn len(&self) -> usize {
        self.arena.len()
    }
    pub fn is_empty(&self) -> bool {
        self.arena.is_empty()
    }
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (Handle<T>, &T)> {
        self.arena.iter()
    }
}

impl<T: Eq + std::hash::Hash + Clone> std::ops::Index<Handle<T>> for UniqueArena<T> {
    type Output = T;
    fn index(&self, h: Handle<T>) -> &T {
        &self.arena[h]
    }
}

impl<T: Eq + std::hash::Hash + Clone> PartialEq for UniqueArena<T> {
    fn eq(&self, o: &Self) -> bool {
        self.arena == o.arena
    }
}
