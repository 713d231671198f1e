//! The signing-key schedule: which key is next, active, retired or gone, and what to do.
//!
//! Every key has a `generation` and an `activates_at`. Everything else is derived, so every
//! node computes the same ring from the same rows at the same instant:
//!
//! ```text
//!            created      activates_at           successor activates   + token lifetime + leeway
//! key n   ────[ next: published, not signing ][ active: signs ][ retired: verify only ]── removed
//! key n+1                             [ next: published ahead ][ active ...
//!                                     └── at least publish_ahead ──┘
//! ```
//!
//! - A key is **next** before its `activates_at`: already in the JWKS, so verifiers that
//!   cache the JWKS for `max-age` learn its `kid` before any token carries it.
//! - The unrevoked key with the latest `activates_at <= now` is **active**: exactly one.
//! - An older key is **retired** when its successor activates, and stays published until
//!   every token it signed has expired plus the leeway; then it is **removed**.
//! - A **revoked** key (compromise) leaves the JWKS at once and its tokens stop verifying.

use std::time::Duration;

use crate::time::UnixTime;

/// A key's schedule as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySchedule {
    /// Key id.
    pub kid: String,
    /// Strictly increasing per key; the store refuses a duplicate, which is how exactly one
    /// node performs each rotation step.
    pub generation: i64,
    /// When the key was generated.
    pub created_at: UnixTime,
    /// When it starts signing.
    pub activates_at: UnixTime,
    /// Set when an operator revoked it.
    pub revoked_at: Option<UnixTime>,
}

/// A key's state at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Published, not yet signing.
    Next,
    /// Signing (exactly one key).
    Active,
    /// Published for verification only.
    Retired,
    /// No longer needed by any token: unpublished, to be deleted.
    Removed,
    /// Revoked: unpublished, tokens it signed no longer verify.
    Revoked,
}

impl KeyState {
    /// Whether the key belongs in the JWKS.
    pub fn is_published(self) -> bool {
        matches!(self, Self::Next | Self::Active | Self::Retired)
    }

    /// The name used in listings.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Active => "active",
            Self::Retired => "retired",
            Self::Removed => "removed",
            Self::Revoked => "revoked",
        }
    }
}

/// The timing rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyPolicy {
    /// How long each key signs (`TESSERA_KEY_ROTATION_INTERVAL`).
    pub rotation_interval: Duration,
    /// How long a key is published before it signs (`TESSERA_KEY_PUBLISH_AHEAD`).
    pub publish_ahead: Duration,
    /// The longest life of a token signed by a key (the access-token TTL).
    pub token_lifetime: Duration,
    /// Clock leeway verifiers allow past `exp`.
    pub leeway: Duration,
}

/// A key's derived timeline and state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTimeline {
    /// The stored schedule.
    pub key: KeySchedule,
    /// When its successor activates (it stops signing), if one is scheduled.
    pub retires_at: Option<UnixTime>,
    /// When it leaves the JWKS, if known.
    pub removes_at: Option<UnixTime>,
    /// Its state at the instant asked about.
    pub state: KeyState,
}

/// Derives every key's timeline at `now`, ordered by generation.
pub fn timeline(keys: &[KeySchedule], policy: &KeyPolicy, now: UnixTime) -> Vec<KeyTimeline> {
    let mut sorted: Vec<&KeySchedule> = keys.iter().collect();
    sorted.sort_by_key(|k| k.generation);
    // All keys in activation order, revoked ones included: a key retires when any later
    // key activates, so revoking the newest key never hands signing back to an older one.
    let mut by_activation: Vec<&KeySchedule> = sorted.clone();
    by_activation.sort_by_key(|k| (k.activates_at, k.generation));
    let active = by_activation
        .iter()
        .rev()
        .find(|k| k.activates_at <= now)
        .filter(|k| k.revoked_at.is_none())
        .map(|k| k.generation);
    sorted
        .iter()
        .map(|key| {
            let successor = by_activation
                .iter()
                .filter(|k| (k.activates_at, k.generation) > (key.activates_at, key.generation))
                .map(|k| k.activates_at)
                .min();
            let retires_at = key.revoked_at.or(successor);
            let removes_at = retires_at.map(|r| r.plus(policy.token_lifetime).plus(policy.leeway));
            let state = if key.revoked_at.is_some() {
                KeyState::Revoked
            } else if now < key.activates_at {
                KeyState::Next
            } else if Some(key.generation) == active {
                KeyState::Active
            } else if removes_at.is_some_and(|r| now >= r) {
                KeyState::Removed
            } else {
                KeyState::Retired
            };
            KeyTimeline {
                key: (*key).clone(),
                retires_at,
                removes_at,
                state,
            }
        })
        .collect()
}

/// One step the scheduler should take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleStep {
    /// Generate and store a key of this generation, activating at this time.
    Generate {
        /// The new key's generation.
        generation: i64,
        /// When it activates.
        activates_at: UnixTime,
    },
    /// Delete a key no token needs any more.
    Delete {
        /// Its kid.
        kid: String,
    },
}

/// The steps due at `now`: a first key if there is none able to sign, the next key once the
/// active one is within `publish_ahead` of its rotation, and deletion of removed keys and of
/// revoked keys whose tokens have all expired.
pub fn due(keys: &[KeySchedule], policy: &KeyPolicy, now: UnixTime) -> Vec<ScheduleStep> {
    let lines = timeline(keys, policy, now);
    let next_generation = keys.iter().map(|k| k.generation).max().unwrap_or(0) + 1;
    let mut steps = Vec::new();
    let active = lines.iter().find(|l| l.state == KeyState::Active);
    let has_next = lines.iter().any(|l| l.state == KeyState::Next);
    match active {
        // Nothing can sign (first start, or the signing key was revoked): a key active at
        // once. No verifier can hold a token of it yet, so publishing ahead protects nobody;
        // a scheduled next key keeps its own activation time.
        None => steps.push(ScheduleStep::Generate {
            generation: next_generation,
            activates_at: now,
        }),
        Some(active) if !has_next => {
            let rotation = active.key.activates_at.plus(policy.rotation_interval);
            let publish_from = UnixTime(rotation.0.saturating_sub(secs(policy.publish_ahead)));
            if now >= publish_from {
                steps.push(ScheduleStep::Generate {
                    generation: next_generation,
                    activates_at: rotation.max(now.plus(policy.publish_ahead)),
                });
            }
        }
        Some(_) => {}
    }
    for line in &lines {
        let gone = match line.state {
            KeyState::Removed => true,
            KeyState::Revoked => line.removes_at.is_some_and(|r| now >= r),
            _ => false,
        };
        if gone {
            steps.push(ScheduleStep::Delete {
                kid: line.key.kid.clone(),
            });
        }
    }
    steps
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const HOUR: i64 = 3600;
    const DAY: i64 = 24 * HOUR;

    fn policy() -> KeyPolicy {
        KeyPolicy {
            rotation_interval: Duration::from_secs(2 * DAY as u64),
            publish_ahead: Duration::from_secs(10 * 60),
            token_lifetime: Duration::from_secs(15 * 60),
            leeway: Duration::from_secs(60),
        }
    }

    /// Applies the due steps the way a node does; returns the kids generated.
    fn apply(keys: &mut Vec<KeySchedule>, now: UnixTime) -> Vec<String> {
        let mut generated = Vec::new();
        for step in due(keys, &policy(), now) {
            match step {
                ScheduleStep::Generate {
                    generation,
                    activates_at,
                } => {
                    let kid = format!("k{generation}");
                    generated.push(kid.clone());
                    keys.push(KeySchedule {
                        kid,
                        generation,
                        created_at: now,
                        activates_at,
                        revoked_at: None,
                    });
                }
                ScheduleStep::Delete { kid } => keys.retain(|k| k.kid != kid),
            }
        }
        generated
    }

    fn published(keys: &[KeySchedule], now: UnixTime) -> Vec<String> {
        timeline(keys, &policy(), now)
            .into_iter()
            .filter(|l| l.state.is_published())
            .map(|l| l.key.kid)
            .collect()
    }

    fn active(keys: &[KeySchedule], now: UnixTime) -> Vec<String> {
        timeline(keys, &policy(), now)
            .into_iter()
            .filter(|l| l.state == KeyState::Active)
            .map(|l| l.key.kid)
            .collect()
    }

    #[test]
    fn four_hundred_days_of_rotation_never_strand_a_token_or_surprise_a_verifier() {
        let start = UnixTime(1_800_000_000);
        let step = 5 * 60; // the scheduler runs, a token is issued, everything is checked
        let mut keys = Vec::new();
        let mut first_published: HashMap<String, UnixTime> = HashMap::new();
        let mut tokens: Vec<(String, UnixTime)> = Vec::new(); // (kid, exp)
        let lifetime = policy().token_lifetime.as_secs() as i64;
        let leeway = policy().leeway.as_secs() as i64;
        let mut now = start;
        while now.0 < start.0 + 400 * DAY {
            apply(&mut keys, now);
            let jwks = published(&keys, now);
            for kid in &jwks {
                first_published.entry(kid.clone()).or_insert(now);
            }
            let signing = active(&keys, now);
            assert_eq!(signing.len(), 1, "exactly one active key at {now:?}");
            let kid = signing[0].clone();
            // No token carries a kid published for less than publish_ahead (the very first
            // key excepted: no verifier can hold a token before there is any).
            if kid != "k1" {
                let age = now.0 - first_published[&kid].0;
                assert!(
                    age >= policy().publish_ahead.as_secs() as i64,
                    "{kid} signs after {age}s"
                );
            }
            tokens.push((kid, UnixTime(now.0 + lifetime)));
            // Every unexpired token (with leeway) verifies against the JWKS as published now.
            tokens.retain(|(_, exp)| now.0 < exp.0 + leeway);
            for (kid, exp) in &tokens {
                assert!(
                    jwks.contains(kid),
                    "token of {kid} (exp {exp:?}) unverifiable at {now:?}"
                );
            }
            now = UnixTime(now.0 + step);
        }
        let rotations = keys.iter().map(|k| k.generation).max().unwrap();
        assert!(rotations >= 200, "one rotation every 2 days: {rotations}");
        assert!(
            keys.len() <= 3,
            "removed keys are deleted: {} kept",
            keys.len()
        );
    }

    #[test]
    fn a_revoked_key_leaves_at_once_and_a_new_key_signs_at_once() {
        let t0 = UnixTime(1_800_000_000);
        let mut keys = Vec::new();
        apply(&mut keys, t0);
        let now = UnixTime(t0.0 + HOUR);
        keys[0].revoked_at = Some(now);
        assert!(published(&keys, now).is_empty());
        assert!(active(&keys, now).is_empty());
        let new = apply(&mut keys, now);
        assert_eq!(new, vec!["k2".to_owned()]);
        assert_eq!(active(&keys, now), vec!["k2".to_owned()]);
        assert_eq!(published(&keys, now), vec!["k2".to_owned()]);
        // The revoked row is deleted once its tokens would have expired anyway.
        let later = UnixTime(now.0 + 16 * 60 + 60);
        apply(&mut keys, later);
        assert_eq!(
            keys.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(),
            ["k2"]
        );
    }

    #[test]
    fn revoking_the_signing_key_never_hands_signing_back_to_an_older_key() {
        let t0 = UnixTime(1_800_000_000);
        let mut keys = Vec::new();
        apply(&mut keys, t0);
        // Rotate: k2 signs from t0 + 2 days; k1 is retired.
        let rotated = UnixTime(t0.0 + 2 * DAY);
        apply(&mut keys, UnixTime(rotated.0 - 10 * 60));
        assert_eq!(active(&keys, rotated), vec!["k2".to_owned()]);
        // k2 is compromised five minutes later, while k1 is still published.
        let now = UnixTime(rotated.0 + 5 * 60);
        keys[1].revoked_at = Some(now);
        assert!(active(&keys, now).is_empty(), "k1 must not sign again");
        assert_eq!(apply(&mut keys, now), vec!["k3".to_owned()]);
        assert_eq!(active(&keys, now), vec!["k3".to_owned()]);
        assert_eq!(keys[2].activates_at, now, "the replacement signs at once");
    }

    #[test]
    fn revoking_the_signing_key_with_a_rotation_pending_still_replaces_it_at_once() {
        let t0 = UnixTime(1_800_000_000);
        let mut keys = Vec::new();
        apply(&mut keys, t0);
        let now = UnixTime(t0.0 + 2 * DAY - 5 * 60);
        apply(&mut keys, UnixTime(now.0 - 60)); // k2 published, activates in 6 minutes
        keys[0].revoked_at = Some(now);
        assert_eq!(apply(&mut keys, now), vec!["k3".to_owned()]);
        assert_eq!(active(&keys, now), vec!["k3".to_owned()]);
        // k2 keeps its schedule and takes over at its time.
        let k2_at = keys[1].activates_at;
        assert!(k2_at > now);
        assert_eq!(active(&keys, UnixTime(k2_at.0 - 1)), vec!["k3".to_owned()]);
        assert_eq!(active(&keys, k2_at), vec!["k2".to_owned()]);
    }

    #[test]
    fn the_next_key_is_scheduled_publish_ahead_before_rotation_and_only_once() {
        let t0 = UnixTime(1_800_000_000);
        let mut keys = Vec::new();
        apply(&mut keys, t0);
        let rotation = t0.0 + 2 * DAY;
        assert!(
            apply(&mut keys, UnixTime(rotation - 11 * 60)).is_empty(),
            "too early"
        );
        assert_eq!(
            apply(&mut keys, UnixTime(rotation - 10 * 60)),
            vec!["k2".to_owned()]
        );
        assert!(
            apply(&mut keys, UnixTime(rotation - 5 * 60)).is_empty(),
            "only once"
        );
        assert_eq!(keys[1].activates_at, UnixTime(rotation));
        let line = timeline(&keys, &policy(), UnixTime(rotation - 1));
        assert_eq!(
            (line[0].state, line[1].state),
            (KeyState::Active, KeyState::Next)
        );
        let line = timeline(&keys, &policy(), UnixTime(rotation));
        assert_eq!(
            (line[0].state, line[1].state),
            (KeyState::Retired, KeyState::Active)
        );
        assert_eq!(line[0].removes_at, Some(UnixTime(rotation + 16 * 60)));
    }

    #[test]
    fn a_late_scheduler_still_publishes_ahead() {
        let t0 = UnixTime(1_800_000_000);
        let mut keys = Vec::new();
        apply(&mut keys, t0);
        // The scheduler did not run for a week (the server was down).
        let now = UnixTime(t0.0 + 9 * DAY);
        apply(&mut keys, now);
        assert_eq!(keys[1].activates_at, UnixTime(now.0 + 10 * 60));
        assert_eq!(active(&keys, now), vec!["k1".to_owned()]);
    }
}
