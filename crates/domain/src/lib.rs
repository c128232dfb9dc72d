//! Stagehand's domain: the vocabulary of DESIGN.md as plain types, and the
//! rules over them (validation, the promotion planner, permissions).
//!
//! Nothing here does I/O: no async, no SQL, no HTTP, no clock. Time, ids and
//! states are passed in, so every rule is a plain function that tests can
//! call directly.

pub mod audit;
pub mod delivery;
pub mod env;
pub mod error;
pub mod flow;
pub mod ids;
pub mod names;
pub mod pipeline;
pub mod plan;
pub mod promotion;
pub mod rbac;

pub use audit::AuditEventKind;
pub use env::{EnvKey, EnvKeyState, SecretValue};
pub use error::{FieldError, ValidationError};
pub use flow::{ContentHash, FlowContent, FlowName, MAX_FLOW_BYTES, check_no_nul};
pub use ids::*;
pub use names::{Name, Username};
pub use pipeline::{Protection, StageOrder};
pub use plan::{FlowAdd, FlowChange, FlowRemove, InstanceState, PromotionPlan};
pub use promotion::PromotionStatus;
pub use rbac::{BuiltinRole, Permission, PermissionSet};
