//! A FIFO queue with room for one element inline, for a connection's writer commands.
//!
//! Between two writes a connection almost always has exactly one frame waiting: the message the
//! hub just fanned out. Held in a `VecDeque` alone, that frame cost one allocation and one free
//! per delivery (the storage is dropped once written, so that an idle connection holds none),
//! which in a wide fan-out is thousands of `malloc`s per message, many freed on another thread
//! by the fan-out helper. The first element lives inline instead; only a second one allocates.

use std::collections::VecDeque;

/// Elements oldest first: `head`, then `rest`. `head` is `None` only when `rest` is empty too.
#[derive(Debug)]
pub(crate) struct InlineQueue<T> {
    head: Option<T>,
    rest: VecDeque<T>,
}

impl<T> Default for InlineQueue<T> {
    fn default() -> Self {
        Self {
            head: None,
            rest: VecDeque::new(),
        }
    }
}

impl<T> InlineQueue<T> {
    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_none()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        usize::from(self.head.is_some()) + self.rest.len()
    }

    pub(crate) fn front(&self) -> Option<&T> {
        self.head.as_ref()
    }

    pub(crate) fn push_back(&mut self, item: T) {
        if self.head.is_none() {
            self.head = Some(item);
        } else {
            self.rest.push_back(item);
        }
    }

    pub(crate) fn push_front(&mut self, item: T) {
        if let Some(old) = self.head.replace(item) {
            self.rest.push_front(old);
        }
    }

    pub(crate) fn pop_front(&mut self) -> Option<T> {
        let item = self.head.take();
        self.head = self.rest.pop_front();
        if self.rest.is_empty() && self.rest.capacity() > 0 {
            // Memory follows traffic: a burst's storage goes once the burst is written.
            self.rest = VecDeque::new();
        }
        item
    }

    /// Moves everything of `other` to the back of this queue, leaving `other` empty.
    pub(crate) fn append(&mut self, other: &mut Self) {
        while let Some(item) = other.pop_front() {
            self.push_back(item);
        }
    }

    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = &T> {
        self.head.iter().chain(self.rest.iter())
    }

    pub(crate) fn iter_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut T> {
        self.head.iter_mut().chain(self.rest.iter_mut())
    }

    /// Whether the queue holds storage beyond its inline slot.
    #[cfg(test)]
    fn allocated(&self) -> bool {
        self.rest.capacity() > 0
    }
}

impl<T> IntoIterator for InlineQueue<T> {
    type Item = T;
    type IntoIter =
        std::iter::Chain<std::option::IntoIter<T>, std::collections::vec_deque::IntoIter<T>>;

    fn into_iter(self) -> Self::IntoIter {
        self.head.into_iter().chain(self.rest)
    }
}

impl<T> FromIterator<T> for InlineQueue<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut queue = Self::default();
        for item in iter {
            queue.push_back(item);
        }
        queue
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[derive(Clone, Debug)]
    enum Op {
        PushBack,
        PushFront,
        PopFront,
        Append(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => Just(Op::PushBack),
            1 => Just(Op::PushFront),
            3 => Just(Op::PopFront),
            1 => (0u32..4).prop_map(Op::Append),
        ]
    }

    proptest! {
        /// Invariant: whatever is pushed, popped or appended, the queue holds exactly what a
        /// `VecDeque` given the same operations holds, in the same order.
        #[test]
        fn it_keeps_the_order_a_vecdeque_keeps(ops in prop::collection::vec(op(), 0..60)) {
            let mut queue = InlineQueue::default();
            let mut model: VecDeque<u32> = VecDeque::new();
            let mut next = 0u32;
            for op in ops {
                match op {
                    Op::PushBack => {
                        queue.push_back(next);
                        model.push_back(next);
                        next += 1;
                    }
                    Op::PushFront => {
                        queue.push_front(next);
                        model.push_front(next);
                        next += 1;
                    }
                    Op::PopFront => prop_assert_eq!(queue.pop_front(), model.pop_front()),
                    Op::Append(n) => {
                        let mut other: InlineQueue<u32> = (next..next + n).collect();
                        model.extend(next..next + n);
                        next += n;
                        queue.append(&mut other);
                        prop_assert!(other.is_empty());
                    }
                }
                prop_assert_eq!(queue.len(), model.len());
                prop_assert_eq!(queue.is_empty(), model.is_empty());
                prop_assert_eq!(queue.front(), model.front());
                let forward: Vec<u32> = queue.iter().copied().collect();
                prop_assert_eq!(&forward, &Vec::from(model.clone()));
                let backward: Vec<u32> = queue.iter_mut().rev().map(|n| *n).collect();
                prop_assert_eq!(backward, model.iter().rev().copied().collect::<Vec<_>>());
            }
            let drained: Vec<u32> = queue.into_iter().collect();
            prop_assert_eq!(drained, Vec::from(model));
        }
    }

    #[test]
    fn one_element_at_a_time_never_allocates() {
        let mut queue = InlineQueue::default();
        for n in 0..10 {
            queue.push_back(n);
            assert!(!queue.allocated(), "one waiting element is held inline");
            assert_eq!(queue.pop_front(), Some(n));
        }
    }

    #[test]
    fn a_burst_gives_its_storage_back_once_taken() {
        let mut queue: InlineQueue<u32> = (0..5).collect();
        assert!(queue.allocated());
        while queue.pop_front().is_some() {}
        assert!(
            !queue.allocated(),
            "an idle connection holds no queue storage"
        );
    }
}
