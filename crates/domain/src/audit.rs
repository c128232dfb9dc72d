//! The kinds of audit event. Every state change writes exactly one.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What happened. The string form is stored and shown in the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AuditEventKind {
    #[serde(rename = "team.created")]
    TeamCreated,
    #[serde(rename = "user.created")]
    UserCreated,
    #[serde(rename = "user.disabled")]
    UserDisabled,
    #[serde(rename = "user.enabled")]
    UserEnabled,
    #[serde(rename = "user.password_reset")]
    UserPasswordReset,
    #[serde(rename = "user.logged_in")]
    UserLoggedIn,
    #[serde(rename = "user.logged_out")]
    UserLoggedOut,
    #[serde(rename = "user.login_failed")]
    UserLoginFailed,
    #[serde(rename = "role.created")]
    RoleCreated,
    #[serde(rename = "token.created")]
    TokenCreated,
    #[serde(rename = "token.revoked")]
    TokenRevoked,
    #[serde(rename = "member.bound")]
    MemberBound,
    #[serde(rename = "member.unbound")]
    MemberUnbound,
    #[serde(rename = "instance.created")]
    InstanceCreated,
    /// A new instance made from another's flows and env keys (never its
    /// values, settings or connection).
    #[serde(rename = "instance.duplicated")]
    InstanceDuplicated,
    #[serde(rename = "instance.settings_updated")]
    InstanceSettingsUpdated,
    #[serde(rename = "instance.deleted")]
    InstanceDeleted,
    #[serde(rename = "flow.saved")]
    FlowSaved,
    #[serde(rename = "flow.deleted")]
    FlowDeleted,
    #[serde(rename = "flows.replaced")]
    FlowsReplaced,
    #[serde(rename = "envvar.key_added")]
    EnvKeyAdded,
    #[serde(rename = "envvar.value_set")]
    EnvValueSet,
    #[serde(rename = "envvar.value_cleared")]
    EnvValueCleared,
    #[serde(rename = "envvar.key_removed")]
    EnvKeyRemoved,
    #[serde(rename = "envvar.value_revealed")]
    EnvValueRevealed,
    #[serde(rename = "pipeline.created")]
    PipelineCreated,
    #[serde(rename = "pipeline.renamed")]
    PipelineRenamed,
    #[serde(rename = "pipeline.deleted")]
    PipelineDeleted,
    #[serde(rename = "stage.added")]
    StageAdded,
    #[serde(rename = "stage.removed")]
    StageRemoved,
    #[serde(rename = "stages.reordered")]
    StagesReordered,
    #[serde(rename = "stage.protection_changed")]
    StageProtectionChanged,
    #[serde(rename = "instance.protection_changed")]
    InstanceProtectionChanged,
    #[serde(rename = "promotion.applied")]
    PromotionApplied,
    #[serde(rename = "promotion.requested")]
    PromotionRequested,
    #[serde(rename = "promotion.rolled_back")]
    PromotionRolledBack,
    #[serde(rename = "promotion.rollback_requested")]
    RollbackRequested,
    #[serde(rename = "promotion.approved")]
    PromotionApproved,
    #[serde(rename = "promotion.rejected")]
    PromotionRejected,
    #[serde(rename = "promotion.deploying")]
    PromotionDeploying,
    #[serde(rename = "promotion.failed")]
    PromotionFailed,
    #[serde(rename = "runtime.connected")]
    RuntimeConnected,
    #[serde(rename = "runtime.disconnected")]
    RuntimeDisconnected,
    #[serde(rename = "instance.pulled")]
    InstancePulled,
    /// Old data purged under the retention policy (the platform chain).
    #[serde(rename = "retention.purged")]
    RetentionPurged,
}

impl AuditEventKind {
    /// Every kind, in the order they are declared.
    pub const ALL: [Self; 45] = [
        Self::TeamCreated,
        Self::UserCreated,
        Self::UserDisabled,
        Self::UserEnabled,
        Self::UserPasswordReset,
        Self::UserLoggedIn,
        Self::UserLoggedOut,
        Self::UserLoginFailed,
        Self::RoleCreated,
        Self::TokenCreated,
        Self::TokenRevoked,
        Self::MemberBound,
        Self::MemberUnbound,
        Self::InstanceCreated,
        Self::InstanceDuplicated,
        Self::InstanceSettingsUpdated,
        Self::InstanceDeleted,
        Self::FlowSaved,
        Self::FlowDeleted,
        Self::FlowsReplaced,
        Self::EnvKeyAdded,
        Self::EnvValueSet,
        Self::EnvValueCleared,
        Self::EnvKeyRemoved,
        Self::EnvValueRevealed,
        Self::PipelineCreated,
        Self::PipelineRenamed,
        Self::PipelineDeleted,
        Self::StageAdded,
        Self::StageRemoved,
        Self::StagesReordered,
        Self::StageProtectionChanged,
        Self::InstanceProtectionChanged,
        Self::PromotionApplied,
        Self::PromotionRequested,
        Self::PromotionRolledBack,
        Self::RollbackRequested,
        Self::PromotionApproved,
        Self::PromotionRejected,
        Self::PromotionDeploying,
        Self::PromotionFailed,
        Self::RuntimeConnected,
        Self::RuntimeDisconnected,
        Self::InstancePulled,
        Self::RetentionPurged,
    ];

    pub fn as_str(self) -> &'static str {
        use AuditEventKind::*;
        match self {
            TeamCreated => "team.created",
            UserCreated => "user.created",
            UserDisabled => "user.disabled",
            UserEnabled => "user.enabled",
            UserPasswordReset => "user.password_reset",
            UserLoggedIn => "user.logged_in",
            UserLoggedOut => "user.logged_out",
            UserLoginFailed => "user.login_failed",
            RoleCreated => "role.created",
            TokenCreated => "token.created",
            TokenRevoked => "token.revoked",
            MemberBound => "member.bound",
            MemberUnbound => "member.unbound",
            InstanceCreated => "instance.created",
            InstanceDuplicated => "instance.duplicated",
            InstanceSettingsUpdated => "instance.settings_updated",
            InstanceDeleted => "instance.deleted",
            FlowSaved => "flow.saved",
            FlowDeleted => "flow.deleted",
            FlowsReplaced => "flows.replaced",
            EnvKeyAdded => "envvar.key_added",
            EnvValueSet => "envvar.value_set",
            EnvValueCleared => "envvar.value_cleared",
            EnvKeyRemoved => "envvar.key_removed",
            EnvValueRevealed => "envvar.value_revealed",
            PipelineCreated => "pipeline.created",
            PipelineRenamed => "pipeline.renamed",
            PipelineDeleted => "pipeline.deleted",
            StageAdded => "stage.added",
            StageRemoved => "stage.removed",
            StagesReordered => "stages.reordered",
            StageProtectionChanged => "stage.protection_changed",
            InstanceProtectionChanged => "instance.protection_changed",
            PromotionApplied => "promotion.applied",
            PromotionRequested => "promotion.requested",
            PromotionRolledBack => "promotion.rolled_back",
            RollbackRequested => "promotion.rollback_requested",
            PromotionApproved => "promotion.approved",
            PromotionRejected => "promotion.rejected",
            PromotionDeploying => "promotion.deploying",
            PromotionFailed => "promotion.failed",
            RuntimeConnected => "runtime.connected",
            RuntimeDisconnected => "runtime.disconnected",
            InstancePulled => "instance.pulled",
            RetentionPurged => "retention.purged",
        }
    }
}

impl fmt::Display for AuditEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_name_and_the_serialized_name_agree() {
        for k in AuditEventKind::ALL {
            assert_eq!(
                serde_json::to_value(k).unwrap(),
                serde_json::json!(k.as_str())
            );
        }
    }
}
