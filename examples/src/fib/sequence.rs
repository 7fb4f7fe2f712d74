//! The sequence itself: distinct Fibonacci numbers, 1, 2, 3, 5, 8, ..., in arbitrary
//! precision, with the position of the next one. A plain value with no I/O, so the store can
//! save it and the tests can check it without a server.

use num_bigint::BigUint;

/// Where the sequence stands: the next number to hand out and the one after it.
///
/// The numbers are the Fibonacci numbers from F(2): 1, 2, 3, 5, 8, ... The sequence's usual
/// start, 0, 1, 1, is left out, so that no number is ever handed out twice (1 would be);
/// the 186th number, F(187), is the first that does not fit in a `u128`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequence {
    index: u64,
    current: BigUint,
    next: BigUint,
}

impl Default for Sequence {
    fn default() -> Self {
        Sequence::new()
    }
}

impl Sequence {
    /// The sequence at its start: the first number handed out is 1, then 2, 3, 5, ...
    pub fn new() -> Sequence {
        Sequence {
            index: 0,
            current: BigUint::from(1u32),
            next: BigUint::from(2u32),
        }
    }

    /// The sequence at `index` (how many numbers were handed out before) whose next numbers
    /// are `current` then `next`; `None` unless those are two consecutive Fibonacci numbers
    /// from 1, 2 on, as far as a cheap check tells (`0 < current < next <= 2 * current`, and
    /// the start is 1, 2).
    pub fn from_parts(index: u64, current: BigUint, next: BigUint) -> Option<Sequence> {
        let zero = BigUint::ZERO;
        let plausible = current > zero && current < next && next <= &current * 2u32;
        let start_right = index != 0 || (current == BigUint::from(1u32) && next == 2u32.into());
        (plausible && start_right).then_some(Sequence {
            index,
            current,
            next,
        })
    }

    /// How many numbers were handed out before the next one.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The next number to hand out.
    pub fn current(&self) -> &BigUint {
        &self.current
    }

    /// The number after [`current`](Sequence::current).
    pub fn next_after(&self) -> &BigUint {
        &self.next
    }

    /// Takes the next number and moves on to the one after.
    pub fn advance(&mut self) -> BigUint {
        let after = &self.current + &self.next;
        let taken = std::mem::replace(&mut self.current, std::mem::replace(&mut self.next, after));
        self.index += 1;
        taken
    }
}

impl Iterator for Sequence {
    type Item = BigUint;

    fn next(&mut self) -> Option<BigUint> {
        Some(self.advance())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_one_two_three_and_never_repeats() {
        let first: Vec<String> = Sequence::new().take(10).map(|n| n.to_string()).collect();
        assert_eq!(
            first,
            ["1", "2", "3", "5", "8", "13", "21", "34", "55", "89"]
        );
    }

    #[test]
    fn the_186th_number_is_the_first_past_u128() {
        let numbers: Vec<BigUint> = Sequence::new().take(186).collect();
        assert!(numbers[184] <= BigUint::from(u128::MAX));
        assert!(numbers[185] > BigUint::from(u128::MAX));
    }

    #[test]
    fn parts_round_trip_and_nonsense_is_refused() {
        let mut sequence = Sequence::new();
        sequence.nth(99);
        let again = Sequence::from_parts(
            sequence.index(),
            sequence.current().clone(),
            sequence.next_after().clone(),
        );
        assert_eq!(again.as_ref(), Some(&sequence));
        let (one, two, five) = (
            BigUint::from(1u32),
            BigUint::from(2u32),
            BigUint::from(5u32),
        );
        assert!(Sequence::from_parts(3, two.clone(), five).is_none());
        assert!(Sequence::from_parts(3, two.clone(), one.clone()).is_none());
        assert!(Sequence::from_parts(0, two.clone(), BigUint::from(3u32)).is_none());
        assert!(Sequence::from_parts(0, one, two).is_some());
    }
}
