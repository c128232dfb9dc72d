//! Pipelines and stages: ordering rules, and the protection of instances.

use crate::error::ValidationError;
use crate::ids::StageId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Most approvals a protected instance may require.
pub const MAX_REQUIRED_APPROVALS: u32 = 10;

/// How an instance (an environment, such as production) guards itself.
/// It belongs to the instance, whatever pipelines it appears in: while
/// `required_approvals` is above 0, its flows, keys, values, settings and
/// existence change only through an approved promotion or rollback, or by
/// someone who manages protection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Protection {
    /// Approvals from people other than the requester before a promotion
    /// or rollback into this instance applies; 0 means unprotected.
    pub required_approvals: u32,
    /// Every key must have a value on this instance before a promotion
    /// into it may apply.
    pub requires_all_env_values: bool,
}

impl Protection {
    pub fn new(
        required_approvals: u32,
        requires_all_env_values: bool,
    ) -> Result<Self, ValidationError> {
        if required_approvals > MAX_REQUIRED_APPROVALS {
            return Err(ValidationError::new(
                "required_approvals",
                format!("must be between 0 and {MAX_REQUIRED_APPROVALS}"),
            ));
        }
        Ok(Self {
            required_approvals,
            requires_all_env_values,
        })
    }

    pub fn is_protected(&self) -> bool {
        self.required_approvals > 0
    }
}

/// A new order for a pipeline's stages: every current stage exactly once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageOrder(Vec<StageId>);

impl StageOrder {
    /// Checks that `wanted` is a permutation of `current`.
    pub fn parse(current: &[StageId], wanted: Vec<StageId>) -> Result<Self, ValidationError> {
        let have: BTreeSet<_> = current.iter().collect();
        let want: BTreeSet<_> = wanted.iter().collect();
        if want.len() != wanted.len() {
            return Err(ValidationError::new(
                "stages",
                "lists a stage more than once",
            ));
        }
        if have != want {
            return Err(ValidationError::new(
                "stages",
                "must list every stage of the pipeline exactly once",
            ));
        }
        Ok(Self(wanted))
    }

    pub fn as_slice(&self) -> &[StageId] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reorder_must_be_a_permutation_of_the_current_stages() {
        let (a, b, c) = (StageId::new(), StageId::new(), StageId::new());
        assert!(StageOrder::parse(&[a, b, c], vec![c, a, b]).is_ok());
        assert!(StageOrder::parse(&[a, b, c], vec![a, b]).is_err());
        assert!(StageOrder::parse(&[a, b], vec![a, a]).is_err());
        assert!(StageOrder::parse(&[a, b], vec![a, c]).is_err());
    }

    #[test]
    fn approvals_are_bounded() {
        assert!(Protection::new(10, false).is_ok());
        assert!(Protection::new(11, false).is_err());
        assert!(!Protection::new(0, true).unwrap().is_protected());
    }
}
