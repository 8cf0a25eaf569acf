//! Owner scopes. Every stored row (run, model version, deployment, alert, audit entry) belongs to
//! exactly one scope, and every query filters by it, so tenants never see each other's data.

use std::fmt;

use crate::CoreError;

/// Who owns a row: the platform itself, a tenant, or one user inside a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Scope {
    #[default]
    Platform,
    Tenant(String),
    User {
        tenant: String,
        user: String,
    },
}

impl Scope {
    /// Parses `platform`, `TENANT` or `TENANT/USER` (names: letters, digits, `_ - .`, 1 to 64 characters).
    pub fn parse(raw: &str) -> Result<Scope, CoreError> {
        let invalid = || CoreError::InvalidScope(raw.to_string());
        let valid_name = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s != "platform"
                && !s.starts_with('.')
                && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        };
        if raw == "platform" {
            return Ok(Scope::Platform);
        }
        match raw.split_once('/') {
            None if valid_name(raw) => Ok(Scope::Tenant(raw.to_string())),
            Some((tenant, user)) if valid_name(tenant) && valid_name(user) => {
                Ok(Scope::User { tenant: tenant.to_string(), user: user.to_string() })
            }
            _ => Err(invalid()),
        }
    }

    /// The two key columns a stored row carries: (tenant, user), empty where the scope has none.
    /// Empty strings rather than NULLs, so unique indexes over a scope treat "none" as one value.
    pub fn key(&self) -> (&str, &str) {
        match self {
            Scope::Platform => ("", ""),
            Scope::Tenant(t) => (t, ""),
            Scope::User { tenant, user } => (tenant, user),
        }
    }

    /// The inverse of [`Scope::key`], for rows read back from storage.
    pub fn from_key(tenant: &str, user: &str) -> Result<Scope, CoreError> {
        match (tenant, user) {
            ("", "") => Ok(Scope::Platform),
            (t, "") => Scope::parse(t),
            (t, u) => Scope::parse(&format!("{t}/{u}")),
        }
    }

    /// A form safe as a relative path: `platform`, `t/TENANT` or `t/TENANT/u/USER`.
    pub fn path(&self) -> String {
        match self {
            Scope::Platform => "platform".to_string(),
            Scope::Tenant(t) => format!("t/{t}"),
            Scope::User { tenant, user } => format!("t/{tenant}/u/{user}"),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Platform => f.write_str("platform"),
            Scope::Tenant(t) => f.write_str(t),
            Scope::User { tenant, user } => write!(f, "{tenant}/{user}"),
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_through_text_and_keys() {
        for raw in ["platform", "acme", "acme/bob", "desk-1/j.doe"] {
            let scope = Scope::parse(raw).unwrap();
            assert_eq!(scope.to_string(), raw);
            let (t, u) = scope.key();
            assert_eq!(Scope::from_key(t, u).unwrap(), scope);
        }
        assert_eq!(Scope::parse("acme/bob").unwrap().path(), "t/acme/u/bob");
        for bad in ["", "/", "acme/", "/bob", "a/b/c", "../x", "acme/platform", "a b", ".hidden"] {
            assert!(Scope::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
