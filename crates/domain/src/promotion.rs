//! A promotion's status and the transitions between them.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromotionStatus {
    PendingApproval,
    /// Sent to the target's runtime; applied or failed once it answers
    /// (or, after a crash, once reconciled against it).
    Deploying,
    Applied,
    Failed,
    Rejected,
    RolledBack,
}

impl PromotionStatus {
    pub const ALL: [PromotionStatus; 6] = [
        Self::PendingApproval,
        Self::Deploying,
        Self::Applied,
        Self::Failed,
        Self::Rejected,
        Self::RolledBack,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PendingApproval => "pending_approval",
            Self::Deploying => "deploying",
            Self::Applied => "applied",
            Self::Failed => "failed",
            Self::Rejected => "rejected",
            Self::RolledBack => "rolled_back",
        }
    }

    /// The status as people read it: "awaiting approval", "rolled back".
    pub fn label(self) -> &'static str {
        match self {
            Self::PendingApproval => "awaiting approval",
            Self::Deploying => "deploying",
            Self::Applied => "applied",
            Self::Failed => "failed",
            Self::Rejected => "rejected",
            Self::RolledBack => "rolled back",
        }
    }

    /// What moving into this status does, as people say it: "approved",
    /// "rolled back".
    pub fn as_done(self) -> &'static str {
        match self {
            Self::PendingApproval => "requested",
            Self::Deploying => "deployed",
            Self::Applied => "applied",
            Self::Failed => "failed",
            Self::Rejected => "rejected",
            Self::RolledBack => "rolled back",
        }
    }

    /// Whether a promotion in this status may move to `next`.
    pub fn can_become(self, next: PromotionStatus) -> bool {
        use PromotionStatus::*;
        matches!(
            (self, next),
            (PendingApproval, Deploying | Applied | Failed | Rejected)
                | (Deploying, Applied | Failed)
                | (Applied, RolledBack)
        )
    }
}

impl fmt::Display for PromotionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text is not a promotion status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown promotion status {0:?}")]
pub struct UnknownStatus(pub String);

impl FromStr for PromotionStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::PromotionStatus::*;
    use super::*;

    #[test]
    fn only_an_applied_promotion_can_be_rolled_back() {
        assert!(Applied.can_become(RolledBack));
        for s in [PendingApproval, Failed, Rejected, RolledBack] {
            assert!(!s.can_become(RolledBack), "{s}");
        }
    }

    #[test]
    fn a_pending_promotion_is_applied_rejected_or_failed() {
        assert!(PendingApproval.can_become(Applied));
        assert!(PendingApproval.can_become(Rejected));
        assert!(PendingApproval.can_become(Failed));
        assert!(!Rejected.can_become(Applied));
        assert!(!RolledBack.can_become(Applied));
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for s in PromotionStatus::ALL {
            assert_eq!(s.as_str().parse::<PromotionStatus>(), Ok(s));
        }
    }
}
