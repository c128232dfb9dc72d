//! Audit events in words: a label per kind for the filter list, and a
//! sentence per event built from the names its details carry ("saved the
//! flow orders in dev"), for people; the details stay for auditors.

use serde_json::Value;
use stagehand_domain::AuditEventKind;

/// What the filter list calls a kind.
pub(crate) fn label(kind: AuditEventKind) -> &'static str {
    use AuditEventKind::*;
    match kind {
        TeamCreated => "Team created",
        UserCreated => "User created",
        UserDisabled => "User disabled",
        UserEnabled => "User enabled",
        UserPasswordReset => "Password reset",
        UserLoggedIn => "Logged in",
        UserLoggedOut => "Logged out",
        UserLoginFailed => "Login failed",
        RoleCreated => "Role created",
        TokenCreated => "API token created",
        TokenRevoked => "API token revoked",
        MemberBound => "Role given",
        MemberUnbound => "Role taken away",
        InstanceCreated => "Instance created",
        InstanceDuplicated => "Instance duplicated",
        InstanceSettingsUpdated => "Settings changed",
        InstanceDeleted => "Instance deleted",
        FlowSaved => "Flow saved",
        FlowDeleted => "Flow deleted",
        FlowsReplaced => "Flows replaced",
        EnvKeyAdded => "Env key added",
        EnvValueSet => "Env value set",
        EnvValueCleared => "Env value cleared",
        EnvKeyRemoved => "Env key removed",
        EnvValueRevealed => "Env value revealed",
        PipelineCreated => "Pipeline created",
        PipelineRenamed => "Pipeline renamed",
        PipelineDeleted => "Pipeline deleted",
        StageAdded => "Stage added",
        StageRemoved => "Stage removed",
        StagesReordered => "Stages reordered",
        StageProtectionChanged => "Stage protection changed",
        InstanceProtectionChanged => "Protection changed",
        PromotionApplied => "Promotion applied",
        PromotionRequested => "Promotion requested",
        PromotionRolledBack => "Promotion rolled back",
        RollbackRequested => "Rollback requested",
        PromotionApproved => "Promotion approved",
        PromotionRejected => "Promotion rejected",
        PromotionDeploying => "Deploying to a runtime",
        PromotionFailed => "Promotion failed",
        RuntimeConnected => "Runtime connected",
        RuntimeDisconnected => "Runtime disconnected",
        InstancePulled => "Pulled from a runtime",
        RetentionPurged => "Old data purged",
    }
}

/// A string field of the details, if there is one.
fn field<'a>(details: &'a Value, name: &str) -> Option<&'a str> {
    details.get(name).and_then(Value::as_str)
}

/// "`what` `name`" when the details name it, else `fallback`.
fn named(details: &Value, key: &str, what: &str, fallback: &str) -> String {
    match field(details, key) {
        Some(n) => format!("{what} {n}"),
        None => fallback.to_owned(),
    }
}

/// [`named`], then " in dev" (or " from dev", …) when the details name
/// the instance: "saved the flow orders in dev".
fn named_in(details: &Value, key: &str, what: &str, fallback: &str, preposition: &str) -> String {
    format!(
        "{}{}",
        named(details, key, what, fallback),
        place(details, preposition)
    )
}

/// " in dev" (or " from dev", …) when the details name the instance.
fn place(details: &Value, preposition: &str) -> String {
    field(details, "instance")
        .map(|i| format!(" {preposition} {i}"))
        .unwrap_or_default()
}

/// The event as a sentence without its subject (the actor column says
/// who): "saved the flow orders in dev". An unknown kind reads as its name.
pub(crate) fn sentence(kind: &str, d: &Value) -> String {
    let Some(k) = AuditEventKind::ALL.into_iter().find(|k| k.as_str() == kind) else {
        return kind.to_owned();
    };
    use AuditEventKind::*;
    let restore = d.get("restore") == Some(&Value::Bool(true));
    let rollback = d.get("rollback") == Some(&Value::Bool(true));
    let promotion = || match (field(d, "from"), field(d, "to")) {
        (_, Some(t)) if rollback => format!("the rollback of {t}"),
        // A restore's source is its target.
        (Some(f), Some(t)) if f == t => format!("a restore of {t}"),
        (Some(f), Some(t)) => format!("{f} → {t}"),
        (None, Some(t)) => format!("into {t}"),
        _ => "a promotion".to_owned(),
    };
    let instance = || field(d, "instance").unwrap_or("an instance");
    match k {
        TeamCreated => named(d, "name", "created the team", "created a team"),
        UserCreated => named(d, "username", "created the user", "created a user"),
        UserDisabled => named(d, "username", "disabled", "disabled a user"),
        UserEnabled => named(d, "username", "enabled", "enabled a user"),
        UserPasswordReset => named(d, "username", "set a new password for", "reset a password"),
        UserLoggedIn => "logged in".into(),
        UserLoggedOut => "logged out".into(),
        UserLoginFailed => named(d, "username", "failed to log in as", "failed to log in"),
        RoleCreated => named(d, "name", "created the role", "created a role"),
        TokenCreated => format!(
            "{}{}",
            named(d, "name", "created the API token", "created an API token"),
            field(d, "role")
                .map(|r| format!(" acting as {r}"))
                .unwrap_or_default()
        ),
        TokenRevoked => named(d, "name", "revoked the API token", "revoked an API token"),
        MemberBound => match (field(d, "username"), field(d, "role")) {
            (Some(u), Some(r)) => format!("gave {u} the role {r}"),
            _ => "gave a role".into(),
        },
        MemberUnbound => match (field(d, "username"), field(d, "role")) {
            (Some(u), Some(r)) => format!("took the role {r} from {u}"),
            _ => "took a role away".into(),
        },
        InstanceCreated => named(d, "name", "created the instance", "created an instance"),
        InstanceDuplicated => match (field(d, "from_name"), field(d, "name")) {
            (Some(f), Some(n)) => format!("duplicated {f} as {n} (flows and keys, no values)"),
            _ => "duplicated an instance".into(),
        },
        InstanceSettingsUpdated => format!("changed the settings{}", place(d, "of")),
        InstanceDeleted => named(d, "name", "deleted the instance", "deleted an instance"),
        FlowSaved => named_in(d, "flow", "saved the flow", "saved a flow", "in"),
        FlowDeleted => named_in(d, "flow", "deleted the flow", "deleted a flow", "from"),
        FlowsReplaced => format!("replaced the flows{}", place(d, "of")),
        EnvKeyAdded => named_in(d, "key", "added the key", "added a key", "to"),
        EnvValueSet => named_in(d, "key", "set the value of", "set a value", "in"),
        EnvValueCleared => named_in(d, "key", "cleared the value of", "cleared a value", "in"),
        EnvKeyRemoved => named_in(d, "key", "removed the key", "removed a key", "from"),
        EnvValueRevealed => named_in(d, "key", "revealed the value of", "revealed a value", "in"),
        PipelineCreated => named(d, "pipeline", "created the pipeline", "created a pipeline"),
        PipelineRenamed => match (field(d, "from"), field(d, "pipeline")) {
            (Some(f), Some(t)) => format!("renamed the pipeline {f} to {t}"),
            _ => "renamed a pipeline".into(),
        },
        PipelineDeleted => named(d, "pipeline", "deleted the pipeline", "deleted a pipeline"),
        StageAdded => format!(
            "{}{}",
            named(d, "instance", "added the stage", "added a stage"),
            field(d, "pipeline")
                .map(|p| format!(" to {p}"))
                .unwrap_or_default()
        ),
        StageRemoved => format!(
            "{}{}",
            named(d, "instance", "removed the stage", "removed a stage"),
            field(d, "pipeline")
                .map(|p| format!(" from {p}"))
                .unwrap_or_default()
        ),
        StagesReordered => named(d, "pipeline", "reordered the stages of", "reordered stages"),
        StageProtectionChanged | InstanceProtectionChanged => {
            format!("changed the protection{}", place(d, "of"))
        }
        // Applied by the last approval: the approver applied what someone
        // else requested.
        PromotionApplied if d.get("approved") == Some(&Value::Bool(true)) => {
            format!("applied {}, with the last approval it needed", promotion())
        }
        PromotionApplied if restore => format!(
            "restored {} to one of its snapshots",
            field(d, "to").unwrap_or("an instance")
        ),
        PromotionApplied => format!("promoted {}", promotion()),
        PromotionRequested if restore => format!(
            "requested a restore of {} to one of its snapshots",
            field(d, "to").unwrap_or("an instance")
        ),
        PromotionRequested => format!("requested the promotion {}", promotion()),
        PromotionRolledBack => match field(d, "instance") {
            Some(i) => format!("rolled back {i} (undoing a promotion)"),
            None => format!("rolled back {}", promotion()),
        },
        RollbackRequested => match field(d, "to") {
            Some(t) => format!("requested a rollback of {t}"),
            None => "requested a rollback".into(),
        },
        PromotionApproved => format!("approved {}", promotion()),
        PromotionRejected if d.get("withdrawn") == Some(&Value::Bool(true)) => {
            format!("withdrew their request: {}", promotion())
        }
        PromotionRejected => format!("rejected {}", promotion()),
        PromotionDeploying => format!("sent {} to its runtime", promotion()),
        PromotionFailed => format!("failed to deploy {}", promotion()),
        RuntimeConnected => format!(
            "connected {} to {}",
            instance(),
            field(d, "kind").unwrap_or("a runtime")
        ),
        RuntimeDisconnected => format!("disconnected {} from its runtime", instance()),
        InstancePulled => format!("pulled {} from its runtime", instance()),
        RetentionPurged => "purged old data under the retention policy".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_read_as_sentences_with_names() {
        for (kind, details, expected) in [
            (
                "flow.saved",
                json!({"flow": "orders", "instance": "dev", "hash": "ab"}),
                "saved the flow orders in dev",
            ),
            (
                "envvar.value_revealed",
                json!({"key": "API_TOKEN", "instance": "prod"}),
                "revealed the value of API_TOKEN in prod",
            ),
            (
                "promotion.applied",
                json!({"from": "dev", "to": "qa", "pipeline": "checkout"}),
                "promoted dev → qa",
            ),
            (
                "member.bound",
                json!({"username": "lena", "role": "lead"}),
                "gave lena the role lead",
            ),
            (
                "runtime.connected",
                json!({"instance": "prod", "kind": "node_red"}),
                "connected prod to node_red",
            ),
            (
                "instance.pulled",
                json!({"instance": "prod"}),
                "pulled prod from its runtime",
            ),
            (
                "promotion.applied",
                json!({"to": "prod", "approved": true}),
                "applied into prod, with the last approval it needed",
            ),
            (
                "promotion.applied",
                json!({"from": "prod", "to": "prod", "restore": true}),
                "restored prod to one of its snapshots",
            ),
            (
                "promotion.requested",
                json!({"from": "prod", "to": "prod", "restore": true}),
                "requested a restore of prod to one of its snapshots",
            ),
            (
                "promotion.approved",
                json!({"from": "dev", "to": "prod", "withdrawn": false}),
                "approved dev → prod",
            ),
            (
                "promotion.rejected",
                json!({"from": "dev", "to": "prod", "withdrawn": true}),
                "withdrew their request: dev → prod",
            ),
            (
                "promotion.rejected",
                json!({"from": "prod", "to": "prod", "rollback": true}),
                "rejected the rollback of prod",
            ),
            (
                "promotion.approved",
                json!({"from": "prod", "to": "prod", "restore": true}),
                "approved a restore of prod",
            ),
            (
                "promotion.rolled_back",
                json!({"instance": "prod"}),
                "rolled back prod (undoing a promotion)",
            ),
            (
                "promotion.rollback_requested",
                json!({"to": "prod"}),
                "requested a rollback of prod",
            ),
            ("flow.saved", json!({}), "saved a flow"),
            ("something.new", json!({"x": 1}), "something.new"),
        ] {
            assert_eq!(sentence(kind, &details), expected, "{kind}");
        }
    }

    #[test]
    fn every_kind_has_a_label_and_a_sentence() {
        for k in AuditEventKind::ALL {
            assert!(!label(k).is_empty());
            assert!(!sentence(k.as_str(), &json!({})).is_empty());
        }
    }
}
