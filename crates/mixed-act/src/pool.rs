//! The candidate pool of a selection layer: which functions its neurons choose among.
//!
//! A pool is an ordered list of distinct [`Activation`]s. Column `k` of a layer's logits and
//! mixing weights (`[N, K]` for a pool of K) belongs to member `k`; ids in tensors and files
//! stay global ([`Activation::id`]), so a phase-2 layer does not know or care which pool its
//! choices came from. The default is the paper's six in id order, under which every result of
//! earlier versions is unchanged.

use std::fmt;
use std::str::FromStr;

use crate::activation::{Activation, ActivationError};

/// An ordered set of 1 to [`Activation::COUNT`] distinct candidates. `Copy`, so that ops and
/// layers hold it by value.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pool {
    members: [Activation; Activation::COUNT],
    len: u8,
}

/// Why a list of names or activations is not a pool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("the pool is empty (name at least one activation)")]
    Empty,
    #[error("'{0}' appears twice in the pool")]
    Duplicate(Activation),
    #[error(transparent)]
    Unknown(#[from] ActivationError),
}

impl Pool {
    /// The paper's six: relu, sigmoid, tanh, leaky_relu, elu, selu.
    pub fn paper() -> Self {
        Self::new(&Activation::PAPER).expect("the paper's pool is valid")
    }

    /// Every candidate there is, in id order.
    pub fn all() -> Self {
        Self::new(&Activation::ALL).expect("every candidate once is a valid pool")
    }

    /// A pool of these members, in this order (the order of the logits' columns).
    pub fn new(members: &[Activation]) -> Result<Self, PoolError> {
        if members.is_empty() {
            return Err(PoolError::Empty);
        }
        let mut pool = Pool {
            members: [Activation::Relu; Activation::COUNT],
            len: 0,
        };
        for &a in members {
            if pool.members().contains(&a) {
                return Err(PoolError::Duplicate(a));
            }
            pool.members[pool.len as usize] = a;
            pool.len += 1;
        }
        Ok(pool)
    }

    /// The members, in column order.
    pub fn members(&self) -> &[Activation] {
        &self.members[..self.len as usize]
    }

    /// K, the number of members (columns of the logits).
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Never true: a pool has at least one member.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The column of `a`, if it is a member.
    pub fn index_of(&self, a: Activation) -> Option<usize> {
        self.members().iter().position(|&m| m == a)
    }

    /// Whether this is the default pool (the paper's six in id order).
    pub fn is_paper(&self) -> bool {
        self.members() == Activation::PAPER
    }

    /// The members as one integer for the GPU kernels: K in bits 0..4, member k's id in bits
    /// 4(k + 1)..4(k + 2). Ids are below 16 and K at most 11, so 48 bits suffice.
    pub fn packed(&self) -> u64 {
        self.members()
            .iter()
            .enumerate()
            .fold(self.len as u64, |bits, (k, a)| {
                bits | (a.id() as u64) << (4 * (k + 1))
            })
    }
}

impl Default for Pool {
    fn default() -> Self {
        Self::paper()
    }
}

/// Comma-separated names, as accepted by [`FromStr`]: `relu,tanh,gelu`.
impl fmt::Display for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.members().iter().map(|a| a.name()).collect();
        f.write_str(&names.join(","))
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pool({self})")
    }
}

impl FromStr for Pool {
    type Err = PoolError;

    /// Comma-separated activation names (any spelling [`Activation`] accepts), or `paper` for
    /// the default six and `all` for every candidate.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_lowercase().as_str() {
            "paper" => return Ok(Pool::paper()),
            "all" => return Ok(Pool::all()),
            _ => {}
        }
        let members = s
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(str::parse)
            .collect::<Result<Vec<Activation>, _>>()?;
        Pool::new(&members)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_parse_print_and_pack() {
        let pool: Pool = "relu, ELU,gelu".parse().unwrap();
        assert_eq!(
            pool.members(),
            [Activation::Relu, Activation::Elu, Activation::Gelu]
        );
        assert_eq!(pool.to_string(), "relu,elu,gelu");
        assert_eq!(pool.to_string().parse::<Pool>().unwrap(), pool);
        assert_eq!(pool.index_of(Activation::Gelu), Some(2));
        assert_eq!(pool.index_of(Activation::Tanh), None);
        // K = 3, then ids 0 (relu), 4 (elu), 6 (gelu) in 4-bit fields.
        assert_eq!(pool.packed(), 0x6403);
        assert!(Pool::default().is_paper() && !pool.is_paper());
        assert_eq!("paper".parse::<Pool>().unwrap(), Pool::paper());
        assert_eq!("all".parse::<Pool>().unwrap().len(), Activation::COUNT);
        // The paper's members in another order are another pool (other columns).
        assert!(!"sigmoid,relu,tanh,leaky_relu,elu,selu"
            .parse::<Pool>()
            .unwrap()
            .is_paper());
    }

    #[test]
    fn bad_pools_say_what_is_wrong() {
        let err = |s: &str| s.parse::<Pool>().unwrap_err().to_string();
        assert!(err("").contains("empty"));
        assert!(err(" , ").contains("empty"));
        assert!(err("relu,tanh,relu").contains("'relu' appears twice"));
        let e = err("relu,swish");
        assert!(e.contains("swish") && e.contains("gelu"), "{e}");
    }
}
