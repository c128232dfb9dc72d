//! The promotion planner: a pure function from the source's and the
//! target's state to the plan that promoting one into the other carries out.
//!
//! The rules (DESIGN.md, "Promotion semantics"):
//! 1. the target's flow set becomes exactly the source's; flows whose hash is
//!    the same are left alone;
//! 2. source keys missing on the target are added *without a value*; target
//!    values are never touched; target-only keys are kept and reported;
//! 3. settings are not part of the state at all.
//!
//! The planner's input, [`InstanceState`], cannot hold an env value: a value
//! that never enters the plan cannot leak out of it.

use crate::env::{EnvKey, EnvKeyState};
use crate::flow::{ContentHash, FlowName};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// What the planner knows of an instance: each flow's hash, each key's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceState {
    pub flows: BTreeMap<FlowName, ContentHash>,
    pub env: BTreeMap<EnvKey, EnvKeyState>,
}

impl InstanceState {
    /// The content hash of the whole state (flows and keys, not values):
    /// equal states have equal hashes.
    pub fn content_hash(&self) -> ContentHash {
        let mut h = Sha256::new();
        for (name, hash) in &self.flows {
            h.update(b"f\0");
            h.update(name.as_str().as_bytes());
            h.update(b"\0");
            h.update(hash.as_str().as_bytes());
            h.update(b"\n");
        }
        for key in self.env.keys() {
            h.update(b"k\0");
            h.update(key.as_str().as_bytes());
            h.update(b"\n");
        }
        ContentHash::from_digest(h.finalize().as_slice())
    }
}

/// A flow present only in the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowAdd {
    pub name: FlowName,
    pub hash: ContentHash,
}

/// A flow present on both sides with different content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowChange {
    pub name: FlowName,
    pub from: ContentHash,
    pub to: ContentHash,
}

/// A flow present only in the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowRemove {
    pub name: FlowName,
    pub hash: ContentHash,
}

/// Everything a promotion will do, and what it will leave as it is. All
/// lists are sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromotionPlan {
    pub flows_added: Vec<FlowAdd>,
    pub flows_changed: Vec<FlowChange>,
    pub flows_removed: Vec<FlowRemove>,
    pub flows_unchanged: Vec<FlowName>,
    /// Source keys missing on the target: added there without a value.
    pub keys_to_add: Vec<EnvKey>,
    /// Target keys absent from the source: kept, reported.
    pub keys_only_in_target: Vec<EnvKey>,
    /// Target keys that have no value today.
    pub target_keys_awaiting_value: Vec<EnvKey>,
}

impl PromotionPlan {
    /// Plans promoting `source` into `target`.
    pub fn between(source: &InstanceState, target: &InstanceState) -> Self {
        let mut plan = Self::default();
        for (name, hash) in &source.flows {
            match target.flows.get(name) {
                None => plan.flows_added.push(FlowAdd {
                    name: name.clone(),
                    hash: hash.clone(),
                }),
                Some(old) if old != hash => plan.flows_changed.push(FlowChange {
                    name: name.clone(),
                    from: old.clone(),
                    to: hash.clone(),
                }),
                Some(_) => plan.flows_unchanged.push(name.clone()),
            }
        }
        for (name, hash) in &target.flows {
            if !source.flows.contains_key(name) {
                plan.flows_removed.push(FlowRemove {
                    name: name.clone(),
                    hash: hash.clone(),
                });
            }
        }
        plan.keys_to_add = source
            .env
            .keys()
            .filter(|k| !target.env.contains_key(*k))
            .cloned()
            .collect();
        plan.keys_only_in_target = target
            .env
            .keys()
            .filter(|k| !source.env.contains_key(*k))
            .cloned()
            .collect();
        plan.target_keys_awaiting_value = target
            .env
            .iter()
            .filter(|(_, s)| **s == EnvKeyState::AwaitingValue)
            .map(|(k, _)| k.clone())
            .collect();
        plan
    }

    /// The plan of a rollback: the target's flows become `flows` (a
    /// backup's); keys and values stay as they are.
    pub fn restoring(flows: BTreeMap<FlowName, ContentHash>, current: &InstanceState) -> Self {
        Self::between(
            &InstanceState {
                flows,
                env: BTreeMap::new(),
            },
            current,
        )
    }

    /// True when applying the plan changes nothing.
    pub fn is_noop(&self) -> bool {
        self.flows_added.is_empty()
            && self.flows_changed.is_empty()
            && self.flows_removed.is_empty()
            && self.keys_to_add.is_empty()
    }

    /// Target keys that will have no value once the plan is applied: those
    /// awaiting one today and every key the plan adds.
    pub fn keys_awaiting_value_after(&self) -> Vec<EnvKey> {
        let mut keys: Vec<EnvKey> = self
            .target_keys_awaiting_value
            .iter()
            .chain(&self.keys_to_add)
            .cloned()
            .collect();
        keys.sort();
        keys
    }

    /// Applies the plan to a target's flows and env vars. This is the
    /// reference semantics the stores implement in SQL; the stores' own tests
    /// check they agree with it. Values are generic so the same rules hold
    /// for plaintext, ciphertext or "has a value" flags.
    pub fn apply_to<V>(
        &self,
        flows: &mut BTreeMap<FlowName, ContentHash>,
        env: &mut BTreeMap<EnvKey, Option<V>>,
    ) {
        for r in &self.flows_removed {
            flows.remove(&r.name);
        }
        for a in &self.flows_added {
            flows.insert(a.name.clone(), a.hash.clone());
        }
        for c in &self.flows_changed {
            flows.insert(c.name.clone(), c.to.clone());
        }
        for k in &self.keys_to_add {
            env.entry(k.clone()).or_insert(None);
        }
    }

    /// Counts for a one-line summary.
    pub fn summary(&self) -> PlanSummary {
        PlanSummary {
            flows_added: self.flows_added.len(),
            flows_changed: self.flows_changed.len(),
            flows_removed: self.flows_removed.len(),
            flows_unchanged: self.flows_unchanged.len(),
            keys_added: self.keys_to_add.len(),
            keys_only_in_target: self.keys_only_in_target.len(),
        }
    }
}

/// The counts of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSummary {
    pub flows_added: usize,
    pub flows_changed: usize,
    pub flows_removed: usize,
    pub flows_unchanged: usize,
    pub keys_added: usize,
    pub keys_only_in_target: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(s: &str) -> ContentHash {
        ContentHash::of_bytes(s.as_bytes())
    }

    fn state(flows: &[(&str, &str)], env: &[(&str, bool)]) -> InstanceState {
        InstanceState {
            flows: flows
                .iter()
                .map(|(n, c)| (FlowName::parse(n).unwrap(), hash(c)))
                .collect(),
            env: env
                .iter()
                .map(|(k, has)| {
                    let s = if *has {
                        EnvKeyState::HasValue
                    } else {
                        EnvKeyState::AwaitingValue
                    };
                    (EnvKey::parse(k).unwrap(), s)
                })
                .collect(),
        }
    }

    fn names<T>(items: &[T], name: impl Fn(&T) -> &str) -> Vec<String> {
        items.iter().map(|i| name(i).to_owned()).collect()
    }

    #[test]
    fn a_restore_brings_flows_back_and_never_adds_or_touches_a_key() {
        let backup = state(&[("orders", "v1")], &[("OLD_KEY", true)]);
        let current = state(&[("orders", "v2"), ("new", "x")], &[("NEW_KEY", false)]);
        let plan = PromotionPlan::restoring(backup.flows.clone(), &current);
        assert_eq!(plan.flows_changed.len(), 1);
        assert_eq!(plan.flows_removed.len(), 1);
        assert!(plan.keys_to_add.is_empty(), "{plan:?}");
    }

    #[test]
    fn a_flow_only_in_the_source_is_added() {
        let plan = PromotionPlan::between(&state(&[("a", "1")], &[]), &state(&[], &[]));
        assert_eq!(names(&plan.flows_added, |f| f.name.as_str()), ["a"]);
        assert_eq!(plan.flows_added[0].hash, hash("1"));
    }

    #[test]
    fn a_flow_only_in_the_target_is_removed() {
        let plan = PromotionPlan::between(&state(&[], &[]), &state(&[("old", "1")], &[]));
        assert_eq!(names(&plan.flows_removed, |f| f.name.as_str()), ["old"]);
    }

    #[test]
    fn a_flow_whose_content_differs_is_changed_from_the_target_hash_to_the_source_hash() {
        let plan =
            PromotionPlan::between(&state(&[("a", "new")], &[]), &state(&[("a", "old")], &[]));
        assert_eq!(
            plan.flows_changed,
            [FlowChange {
                name: FlowName::parse("a").unwrap(),
                from: hash("old"),
                to: hash("new"),
            }]
        );
    }

    #[test]
    fn an_identical_flow_is_unchanged_and_not_rewritten() {
        let plan = PromotionPlan::between(&state(&[("a", "1")], &[]), &state(&[("a", "1")], &[]));
        assert_eq!(names(&plan.flows_unchanged, |f| f.as_str()), ["a"]);
        assert!(plan.is_noop());
    }

    #[test]
    fn a_source_key_missing_on_the_target_is_added_without_a_value() {
        let plan = PromotionPlan::between(&state(&[], &[("TOKEN", true)]), &state(&[], &[]));
        assert_eq!(names(&plan.keys_to_add, |k| k.as_str()), ["TOKEN"]);
        let mut flows = BTreeMap::new();
        let mut env: BTreeMap<EnvKey, Option<&str>> = BTreeMap::new();
        plan.apply_to(&mut flows, &mut env);
        assert_eq!(env.get(&EnvKey::parse("TOKEN").unwrap()), Some(&None));
    }

    #[test]
    fn an_existing_target_value_is_never_overwritten() {
        let plan =
            PromotionPlan::between(&state(&[], &[("DB", true)]), &state(&[], &[("DB", true)]));
        assert!(plan.keys_to_add.is_empty());
        let mut env = BTreeMap::from([(EnvKey::parse("DB").unwrap(), Some("prod-db"))]);
        plan.apply_to(&mut BTreeMap::new(), &mut env);
        assert_eq!(env[&EnvKey::parse("DB").unwrap()], Some("prod-db"));
    }

    #[test]
    fn a_key_present_only_in_the_target_is_kept_and_reported() {
        let plan = PromotionPlan::between(&state(&[], &[]), &state(&[], &[("PROD_ONLY", true)]));
        assert_eq!(
            names(&plan.keys_only_in_target, |k| k.as_str()),
            ["PROD_ONLY"]
        );
        let mut env = BTreeMap::from([(EnvKey::parse("PROD_ONLY").unwrap(), Some("v"))]);
        plan.apply_to(&mut BTreeMap::new(), &mut env);
        assert_eq!(env.len(), 1);
    }

    #[test]
    fn target_keys_awaiting_a_value_are_reported_before_and_after() {
        let plan = PromotionPlan::between(
            &state(&[], &[("NEW", true), ("WAITING", false)]),
            &state(&[], &[("WAITING", false), ("SET", true)]),
        );
        assert_eq!(
            names(&plan.target_keys_awaiting_value, |k| k.as_str()),
            ["WAITING"]
        );
        assert_eq!(
            names(&plan.keys_awaiting_value_after(), |k| k.as_str()),
            ["NEW", "WAITING"]
        );
    }

    #[test]
    fn the_state_hash_depends_on_flows_and_keys_but_not_on_values() {
        let a = state(&[("f", "1")], &[("K", true)]);
        let b = state(&[("f", "1")], &[("K", false)]);
        let c = state(&[("f", "2")], &[("K", true)]);
        assert_eq!(a.content_hash(), b.content_hash());
        assert_ne!(a.content_hash(), c.content_hash());
    }

    mod properties {
        use super::*;
        use proptest::collection::btree_map;
        use proptest::prelude::*;

        fn flow_name() -> impl Strategy<Value = FlowName> {
            "[a-e]{1,2}".prop_map(|s| FlowName::parse(&s).unwrap())
        }

        fn env_key() -> impl Strategy<Value = EnvKey> {
            "[A-E]{1,2}".prop_map(|s| EnvKey::parse(&s).unwrap())
        }

        fn flows() -> impl Strategy<Value = BTreeMap<FlowName, ContentHash>> {
            btree_map(flow_name(), "[0-2]".prop_map(|c| hash(&c)), 0..8)
        }

        /// Env vars with recognisable values, so a leak would be visible.
        fn env(tag: &'static str) -> impl Strategy<Value = BTreeMap<EnvKey, Option<String>>> {
            btree_map(
                env_key(),
                proptest::option::of("[a-z]{4}".prop_map(move |v| format!("{tag}-secret-{v}"))),
                0..8,
            )
        }

        fn state_of(
            flows: &BTreeMap<FlowName, ContentHash>,
            env: &BTreeMap<EnvKey, Option<String>>,
        ) -> InstanceState {
            InstanceState {
                flows: flows.clone(),
                env: env
                    .iter()
                    .map(|(k, v)| (k.clone(), EnvKeyState::of(v)))
                    .collect(),
            }
        }

        proptest! {
            #[test]
            fn after_applying_any_plan_the_target_flows_equal_the_source_flows(
                sf in flows(), se in env("src"), tf in flows(), te in env("tgt"),
            ) {
                let plan = PromotionPlan::between(&state_of(&sf, &se), &state_of(&tf, &te));
                let (mut flows, mut env) = (tf.clone(), te.clone());
                plan.apply_to(&mut flows, &mut env);
                prop_assert_eq!(flows, sf);
            }

            #[test]
            fn target_values_survive_new_keys_are_empty_and_target_only_keys_stay(
                sf in flows(), se in env("src"), tf in flows(), te in env("tgt"),
            ) {
                let plan = PromotionPlan::between(&state_of(&sf, &se), &state_of(&tf, &te));
                let (mut flows, mut env) = (tf.clone(), te.clone());
                plan.apply_to(&mut flows, &mut env);
                for (k, v) in &te {
                    prop_assert_eq!(env.get(k), Some(v), "target key {} changed", k);
                }
                for k in se.keys().filter(|k| !te.contains_key(*k)) {
                    prop_assert_eq!(env.get(k), Some(&None), "new key {} got a value", k);
                }
                let expected: Vec<&EnvKey> = se.keys().chain(te.keys()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
                prop_assert_eq!(env.keys().collect::<Vec<_>>(), expected);
            }

            #[test]
            fn no_source_value_appears_anywhere_in_the_plan(
                sf in flows(), se in env("src"), tf in flows(), te in env("tgt"),
            ) {
                let plan = PromotionPlan::between(&state_of(&sf, &se), &state_of(&tf, &te));
                let text = format!("{plan:?} {}", serde_json::to_string(&plan).unwrap());
                prop_assert!(!text.contains("secret-"), "a value leaked: {}", text);
            }

            #[test]
            fn unchanged_flows_are_exactly_those_with_equal_hashes(
                sf in flows(), tf in flows(),
            ) {
                let plan = PromotionPlan::between(
                    &InstanceState { flows: sf.clone(), env: BTreeMap::new() },
                    &InstanceState { flows: tf.clone(), env: BTreeMap::new() },
                );
                let same: Vec<&FlowName> = sf.iter().filter(|(n, h)| tf.get(*n) == Some(*h)).map(|(n, _)| n).collect();
                prop_assert_eq!(plan.flows_unchanged.iter().collect::<Vec<_>>(), same);
                prop_assert_eq!(
                    plan.flows_added.len() + plan.flows_changed.len() + plan.flows_unchanged.len(),
                    sf.len()
                );
            }

            #[test]
            fn planning_a_state_against_itself_after_a_promotion_is_a_noop(
                sf in flows(), se in env("src"), tf in flows(), te in env("tgt"),
            ) {
                let plan = PromotionPlan::between(&state_of(&sf, &se), &state_of(&tf, &te));
                let (mut flows, mut env) = (tf.clone(), te.clone());
                plan.apply_to(&mut flows, &mut env);
                let again = PromotionPlan::between(&state_of(&sf, &se), &state_of(&flows, &env));
                prop_assert!(again.is_noop(), "{:?}", again);
            }
        }
    }
}
