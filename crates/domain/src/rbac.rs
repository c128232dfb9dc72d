//! Permissions, the built-in roles, and permission sets (DESIGN.md, "RBAC").

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// A verb on a resource. The string forms (`instance.view`, …) are the
/// stable names stored in the database and shown to admins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Permission {
    InstanceView,
    PipelineView,
    PromotionView,
    AuditView,
    AuditExport,
    InstanceEdit,
    EnvvarSet,
    EnvvarReveal,
    PipelineEdit,
    StagePromote,
    PromotionApprove,
    PromotionRollback,
    StagePromoteProtected,
    MemberManage,
    RoleManage,
    TokenManage,
}

impl Permission {
    /// The permission that manages protected instances: it sets their
    /// protection, and it is the only way to change one outside an approved
    /// promotion (DESIGN.md point 8).
    pub const MANAGES_PROTECTION: Permission = Permission::StagePromoteProtected;

    /// Every permission, in the order of DESIGN.md's table.
    pub const ALL: [Permission; 16] = [
        Self::InstanceView,
        Self::PipelineView,
        Self::PromotionView,
        Self::AuditView,
        Self::AuditExport,
        Self::InstanceEdit,
        Self::EnvvarSet,
        Self::EnvvarReveal,
        Self::PipelineEdit,
        Self::StagePromote,
        Self::PromotionApprove,
        Self::PromotionRollback,
        Self::StagePromoteProtected,
        Self::MemberManage,
        Self::RoleManage,
        Self::TokenManage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InstanceView => "instance.view",
            Self::PipelineView => "pipeline.view",
            Self::PromotionView => "promotion.view",
            Self::AuditView => "audit.view",
            Self::AuditExport => "audit.export",
            Self::InstanceEdit => "instance.edit",
            Self::EnvvarSet => "envvar.set",
            Self::EnvvarReveal => "envvar.reveal",
            Self::PipelineEdit => "pipeline.edit",
            Self::StagePromote => "stage.promote",
            Self::PromotionApprove => "promotion.approve",
            Self::PromotionRollback => "promotion.rollback",
            Self::StagePromoteProtected => "stage.promote_protected",
            Self::MemberManage => "member.manage",
            Self::RoleManage => "role.manage",
            Self::TokenManage => "token.manage",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name is not one of [`Permission::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown permission {0:?}")]
pub struct UnknownPermission(pub String);

impl FromStr for Permission {
    type Err = UnknownPermission;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownPermission(s.to_owned()))
    }
}

impl TryFrom<String> for Permission {
    type Error = UnknownPermission;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Permission> for String {
    fn from(p: Permission) -> Self {
        p.as_str().to_owned()
    }
}

/// A set of permissions: what a role grants, or what a user holds in a team.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PermissionSet(BTreeSet<Permission>);

impl PermissionSet {
    pub fn empty() -> Self {
        Self::default()
    }

    pub fn contains(&self, p: Permission) -> bool {
        self.0.contains(&p)
    }

    pub fn union(&mut self, other: &PermissionSet) {
        self.0.extend(other.0.iter().copied());
    }

    pub fn iter(&self) -> impl Iterator<Item = Permission> + '_ {
        self.0.iter().copied()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The permissions of `other` this set does not hold: what a grantor
    /// holding `self` would hand out beyond their own rights by granting
    /// `other`. Empty when the grant is allowed.
    pub fn lacks(&self, other: &PermissionSet) -> Vec<Permission> {
        other.0.difference(&self.0).copied().collect()
    }

    /// The permissions held by both sets: a token capped by its owner.
    pub fn intersection(&self, other: &PermissionSet) -> PermissionSet {
        Self(self.0.intersection(&other.0).copied().collect())
    }

    /// Whether these permissions let one read an instance's settings
    /// *values*: only with `instance.edit`, since settings may hold
    /// credentials of their own (a Node-RED `credentialSecret`). Anyone
    /// with `instance.view` sees that settings exist, their top-level keys
    /// and when they last changed.
    pub fn may_read_settings(&self) -> bool {
        self.contains(Permission::InstanceEdit)
    }
}

impl FromIterator<Permission> for PermissionSet {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

/// The three roles every team has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuiltinRole {
    Viewer,
    Lead,
    Admin,
}

impl BuiltinRole {
    pub const ALL: [BuiltinRole; 3] = [Self::Viewer, Self::Lead, Self::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Lead => "lead",
            Self::Admin => "admin",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// The permissions of DESIGN.md's table.
    pub fn permissions(self) -> PermissionSet {
        use Permission::*;
        let viewer = [
            InstanceView,
            PipelineView,
            PromotionView,
            AuditView,
            AuditExport,
        ];
        let lead = [
            InstanceEdit,
            EnvvarSet,
            PipelineEdit,
            StagePromote,
            PromotionApprove,
            PromotionRollback,
        ];
        match self {
            Self::Viewer => viewer.into_iter().collect(),
            Self::Lead => viewer.into_iter().chain(lead).collect(),
            Self::Admin => Permission::ALL.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Permission::*;

    #[test]
    fn every_permission_round_trips_through_its_name() {
        for p in Permission::ALL {
            assert_eq!(p.as_str().parse::<Permission>(), Ok(p));
        }
        assert!("instance.delete".parse::<Permission>().is_err());
    }

    #[test]
    fn a_viewer_reads_and_exports_but_changes_nothing() {
        let v = BuiltinRole::Viewer.permissions();
        assert!(v.contains(AuditExport) && v.contains(InstanceView));
        assert!(
            !v.contains(InstanceEdit) && !v.contains(StagePromote) && !v.contains(EnvvarReveal)
        );
    }

    #[test]
    fn a_lead_promotes_but_cannot_reveal_values_or_promote_protected_stages() {
        let l = BuiltinRole::Lead.permissions();
        assert!(l.contains(StagePromote) && l.contains(PromotionRollback) && l.contains(EnvvarSet));
        assert!(!l.contains(EnvvarReveal));
        assert!(!l.contains(StagePromoteProtected));
        assert!(!l.contains(MemberManage) && !l.contains(RoleManage) && !l.contains(TokenManage));
    }

    #[test]
    fn a_grant_is_allowed_only_within_what_the_grantor_holds() {
        let lead = BuiltinRole::Lead.permissions();
        assert!(lead.lacks(&BuiltinRole::Viewer.permissions()).is_empty());
        assert!(lead.lacks(&lead).is_empty());
        let beyond = lead.lacks(&BuiltinRole::Admin.permissions());
        assert!(beyond.contains(&EnvvarReveal) && beyond.contains(&MemberManage));
        assert!(!beyond.contains(&InstanceEdit));
    }

    #[test]
    fn a_capped_set_holds_only_what_both_hold() {
        let only_manage: PermissionSet = [MemberManage].into_iter().collect();
        let capped = BuiltinRole::Admin.permissions().intersection(&only_manage);
        assert_eq!(capped, only_manage);
        assert!(
            BuiltinRole::Viewer
                .permissions()
                .intersection(&only_manage)
                .is_empty()
        );
    }

    #[test]
    fn settings_values_are_for_those_who_may_edit_the_instance() {
        assert!(!BuiltinRole::Viewer.permissions().may_read_settings());
        assert!(BuiltinRole::Lead.permissions().may_read_settings());
        let view_only: PermissionSet = [InstanceView, EnvvarReveal].into_iter().collect();
        assert!(!view_only.may_read_settings());
    }

    #[test]
    fn an_admin_holds_every_permission() {
        let a = BuiltinRole::Admin.permissions();
        assert!(Permission::ALL.into_iter().all(|p| a.contains(p)));
    }
}
