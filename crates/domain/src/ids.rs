//! Typed ids, so a team id can never be passed where an instance id is meant.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

macro_rules! id_type {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh random id.
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }
    )*};
}

id_type!(
    /// A team: the tenant.
    TeamId,
    /// A local user account.
    UserId,
    /// A custom role defined by a team.
    RoleId,
    /// An instance of a workflow runtime.
    InstanceId,
    /// A pipeline of stages.
    PipelineId,
    /// One stage of a pipeline.
    StageId,
    /// An immutable snapshot of an instance.
    SnapshotId,
    /// One promotion (one press of play).
    PromotionId,
    /// One audit event.
    AuditEventId,
    /// An API token.
    TokenId,
);
