//! Which roles each of Glance's cache-management policy rules requires
//! (Glance's `[cache_policy]` names and defaults).

use std::fmt;

/// A Glance policy rule that governs cache management. The
/// rule names are Glance's, so an operator's policy vocabulary carries over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PolicyRule {
    /// `cache_list`: `GET /v2/cache`.
    CacheList,
    /// `cache_image`: `PUT /v2/cache/{image_id}`.
    CacheImage,
    /// `cache_delete`: `DELETE /v2/cache` and `DELETE /v2/cache/{image_id}`.
    CacheDelete,
    /// `cache_clean`: `POST /v2/cache/clean`.
    CacheClean,
    /// `cache_prune`: `POST /v2/cache/prune`.
    CachePrune,
    /// `list_cached_nodes`: `GET /v2/cache/nodes/{image_id}`.
    ListCachedNodes,
    /// `manage_image_cache`: every legacy endpoint (`/v2/cached_images`,
    /// `/v2/queued_images`).
    ManageImageCache,
}

impl PolicyRule {
    /// Every rule, in Glance's documentation order.
    pub const ALL: [PolicyRule; 7] = [
        PolicyRule::CacheList,
        PolicyRule::CacheImage,
        PolicyRule::CacheDelete,
        PolicyRule::CacheClean,
        PolicyRule::CachePrune,
        PolicyRule::ListCachedNodes,
        PolicyRule::ManageImageCache,
    ];

    /// Glance's name of the rule (also the option name in `[cache_policy]`).
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyRule::CacheList => "cache_list",
            PolicyRule::CacheImage => "cache_image",
            PolicyRule::CacheDelete => "cache_delete",
            PolicyRule::CacheClean => "cache_clean",
            PolicyRule::CachePrune => "cache_prune",
            PolicyRule::ListCachedNodes => "list_cached_nodes",
            PolicyRule::ManageImageCache => "manage_image_cache",
        }
    }

    /// The rule with Glance's name `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for PolicyRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a policy value is not a [`RoleRule`]; the text says what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidRoleRule(String);

/// Who passes one rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoleRule {
    /// `@`: any authenticated caller.
    Everyone,
    /// `!`: nobody.
    Nobody,
    /// A caller with any of these roles (lower case; compared ignoring
    /// ASCII case).
    AnyOf(Vec<String>),
}

impl Default for RoleRule {
    /// Glance's default for every cache rule: `role:admin`.
    fn default() -> Self {
        RoleRule::AnyOf(vec!["admin".to_owned()])
    }
}

impl RoleRule {
    /// A caller with any of `roles` passes (names are lower-cased).
    pub fn any_of<I, S>(roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        RoleRule::AnyOf(
            roles
                .into_iter()
                .map(|r| r.as_ref().to_lowercase())
                .collect(),
        )
    }

    /// Whether a caller holding `roles` passes.
    pub fn allows<S: AsRef<str>>(&self, roles: &[S]) -> bool {
        match self {
            RoleRule::Everyone => true,
            RoleRule::Nobody => false,
            RoleRule::AnyOf(required) => roles.iter().any(|held| {
                required
                    .iter()
                    .any(|r| r.eq_ignore_ascii_case(held.as_ref().trim()))
            }),
        }
    }

    /// Parses Glance's policy syntax for a rule that only names roles: `@`,
    /// `!`, or comma-separated role names (`role:` prefixes removed).
    ///
    /// ```
    /// use glance_cache::auth::manage::RoleRule;
    ///
    /// assert_eq!(RoleRule::parse("role:admin, Operator").unwrap(), RoleRule::any_of(["admin", "operator"]));
    /// assert_eq!(RoleRule::parse("!").unwrap(), RoleRule::Nobody);
    /// assert!(RoleRule::parse("rule:admin_or_owner").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Self, InvalidRoleRule> {
        Self::parse_roles(text).map_err(InvalidRoleRule)
    }

    fn parse_roles(text: &str) -> Result<Self, String> {
        let items: Vec<&str> = text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        match items.as_slice() {
            [] => return Err("found no role (write ! to refuse everyone)".to_owned()),
            ["@"] => return Ok(RoleRule::Everyone),
            ["!"] => return Ok(RoleRule::Nobody),
            _ => {}
        }
        let mut roles = Vec::with_capacity(items.len());
        for item in items {
            let name = item.strip_prefix("role:").unwrap_or(item).trim();
            if name == "@" || name == "!" {
                return Err(format!("{name} cannot be combined with role names"));
            }
            if name.is_empty()
                || name.contains(':')
                || name.contains(char::is_whitespace)
                || name.contains(['(', ')'])
            {
                return Err(format!(
                    "{item:?} is not a role name (oslo.policy expressions such as rule:... or \
                     'a or b' are not supported; list the roles separated by commas)"
                ));
            }
            let name = name.to_lowercase();
            if !roles.contains(&name) {
                roles.push(name);
            }
        }
        Ok(RoleRule::AnyOf(roles))
    }
}

impl fmt::Display for RoleRule {
    /// The option syntax: `@`, `!` or `admin, member`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoleRule::Everyone => f.write_str("@"),
            RoleRule::Nobody => f.write_str("!"),
            RoleRule::AnyOf(roles) => f.write_str(&roles.join(", ")),
        }
    }
}

/// The roles every cache-management rule requires (`[cache_policy]`).
/// `Default` is Glance's: `admin` for every rule.
///
/// ```
/// use glance_cache::auth::manage::{CachePolicy, PolicyRule, RoleRule};
///
/// let policy = CachePolicy::default()
///     .with_rule(PolicyRule::CacheList, RoleRule::any_of(["admin", "Operator"]));
/// assert!(policy.allows(PolicyRule::CacheList, &["operator"]));
/// assert!(!policy.allows(PolicyRule::CacheDelete, &["operator"]));
/// assert!(policy.allows(PolicyRule::CacheDelete, &["ADMIN"]));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CachePolicy {
    rules: [RoleRule; 7],
}

impl CachePolicy {
    /// Who passes `rule`.
    pub fn rule(&self, rule: PolicyRule) -> &RoleRule {
        &self.rules[rule.index()]
    }

    /// Replaces who passes `rule`.
    pub fn with_rule(mut self, rule: PolicyRule, roles: RoleRule) -> Self {
        self.rules[rule.index()] = roles;
        self
    }

    /// Whether a caller holding `roles` passes `rule`.
    pub fn allows<S: AsRef<str>>(&self, rule: PolicyRule, roles: &[S]) -> bool {
        self.rule(rule).allows(roles)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for r in PolicyRule::ALL {
            assert_eq!(PolicyRule::from_name(r.as_str()), Some(r));
            assert_eq!(r.to_string(), r.as_str());
        }
        assert_eq!(PolicyRule::from_name("Cache_List"), None);
        assert_eq!(PolicyRule::ALL[6].index(), 6);
    }

    #[test]
    fn parse_roles() {
        assert_eq!(RoleRule::parse("admin"), Ok(RoleRule::default()));
        assert_eq!(
            RoleRule::parse(" Admin , role:member,,admin"),
            Ok(RoleRule::any_of(["admin", "member"]))
        );
        assert_eq!(RoleRule::parse("@"), Ok(RoleRule::Everyone));
        assert_eq!(RoleRule::parse(" ! "), Ok(RoleRule::Nobody));
        for bad in [
            "",
            " , ",
            "rule:context_is_admin",
            "role:admin or role:member",
            "admin,@",
            "!,admin",
            "not(admin)",
            "role:",
        ] {
            assert!(RoleRule::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rules_allow() {
        let admin = RoleRule::default();
        assert!(admin.allows(&["reader", "Admin"]));
        assert!(!admin.allows(&["member", "reader"]));
        assert!(!admin.allows::<&str>(&[]));
        assert!(RoleRule::Everyone.allows::<&str>(&[]));
        assert!(!RoleRule::Nobody.allows(&["admin"]));
        assert_eq!(RoleRule::any_of(["A", "b"]).to_string(), "a, b");
        assert_eq!(RoleRule::Everyone.to_string(), "@");
        assert_eq!(RoleRule::Nobody.to_string(), "!");
    }

    #[test]
    fn policy_defaults_to_admin_everywhere() {
        let p = CachePolicy::default();
        for r in PolicyRule::ALL {
            assert_eq!(p.rule(r), &RoleRule::default());
        }
        let p = p.with_rule(PolicyRule::CachePrune, RoleRule::Nobody);
        assert!(!p.allows(PolicyRule::CachePrune, &["admin"]));
        assert!(p.allows(PolicyRule::CacheClean, &["admin"]));
    }
}
