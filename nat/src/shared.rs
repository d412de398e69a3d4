//! A list held by several states at once until one of them changes it (issue 15).
//!
//! Every push builds the next desired state from the committed one while the engine keeps the
//! committed one for the plan and the rollback: two states, which share almost everything.
//! A 10,000-forward list was copied whole for every push, even one that changed only a route
//! (and once more into the nftables concern's mirror). A [`Shared`] list is copied only when
//! a state that shares it changes it (`Arc::make_mut` through [`DerefMut`]), and two states
//! that share it compare equal without looking at an element.
//!
//! It reads, serialises and compares exactly as the `Vec` it holds.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Weak};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A `Vec<T>` shared between clones until one writes (see the module documentation).
#[derive(Debug, Clone)]
pub struct Shared<T>(Arc<Vec<T>>);

impl<T> Shared<T> {
    /// Whether `self` and `other` are the same list, not copies (what makes `==` free).
    pub fn same_list(&self, other: &Shared<T>) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// Names one [`Shared`] list without holding its elements: a cache about a list (the forward
/// memo of issue 15) asks [`ListId::is`] whether a state still holds exactly that list. The
/// weak reference keeps the list's allocation from being reused for another list (no false
/// match after the list is gone), and a write to a list somebody names moves it to a new
/// allocation (`Arc::make_mut`), so a changed list is never "the same".
#[derive(Debug, Clone)]
pub struct ListId<T>(Weak<Vec<T>>);

impl<T> Shared<T> {
    /// This list's [`ListId`].
    pub fn id(&self) -> ListId<T> {
        ListId(Arc::downgrade(&self.0))
    }
}

impl<T> ListId<T> {
    /// Whether `list` is the list this names (not a copy of it).
    pub fn is(&self, list: &Shared<T>) -> bool {
        std::ptr::eq(self.0.as_ptr(), Arc::as_ptr(&list.0))
    }
}

impl<T> Default for Shared<T> {
    fn default() -> Self {
        Shared(Arc::new(Vec::new()))
    }
}

impl<T> Deref for Shared<T> {
    type Target = Vec<T>;
    fn deref(&self) -> &Vec<T> {
        &self.0
    }
}

/// Writing copies the list first when another state holds it too.
impl<T: Clone> DerefMut for Shared<T> {
    fn deref_mut(&mut self) -> &mut Vec<T> {
        Arc::make_mut(&mut self.0)
    }
}

/// Equal when shared (`Eq`: a list equals itself), else element by element.
impl<T: Eq> PartialEq for Shared<T> {
    fn eq(&self, other: &Self) -> bool {
        self.same_list(other) || *self.0 == *other.0
    }
}

impl<T: Eq> Eq for Shared<T> {}

impl<T> From<Vec<T>> for Shared<T> {
    fn from(v: Vec<T>) -> Self {
        Shared(Arc::new(v))
    }
}

impl<T> FromIterator<T> for Shared<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        Shared(Arc::new(iter.into_iter().collect()))
    }
}

impl<'a, T> IntoIterator for &'a Shared<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<T: Serialize> Serialize for Shared<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Shared<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::deserialize(d).map(Shared::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_until_one_writes() {
        let a: Shared<u32> = vec![1, 2, 3].into();
        let mut b = a.clone();
        assert!(a.same_list(&b));
        assert_eq!(a, b);
        b.push(4);
        assert!(!a.same_list(&b));
        assert_eq!(*a, vec![1, 2, 3]);
        assert_eq!(*b, vec![1, 2, 3, 4]);
        assert_ne!(a, b);
        let c: Shared<u32> = vec![1, 2, 3].into();
        assert!(!a.same_list(&c));
        assert_eq!(a, c);
    }

    #[test]
    fn serialises_as_the_list() {
        let a: Shared<u32> = vec![1, 2].into();
        assert_eq!(serde_json::to_string(&a).unwrap(), "[1,2]");
        let b: Shared<u32> = serde_json::from_str("[1,2]").unwrap();
        assert_eq!(a, b);
    }
}
