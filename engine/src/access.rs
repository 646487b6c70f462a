//! Who may do what: the four roles and the signed-in principal, shared by the server (which
//! enforces them) and the UI (which shows them and hides what a role may not use).

use serde::{Deserialize, Serialize};

/// A user's or API token's role. Each includes everything of the roles before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything: workflows, runs, charts.
    Viewer,
    /// Also triggers, cancels and retries runs.
    Operator,
    /// Also creates, edits, archives and restores workflows.
    Editor,
    /// Also manages users, API tokens and secrets.
    Admin,
}

impl Role {
    /// Every role, least first.
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Operator, Role::Editor, Role::Admin];

    /// Its name (`viewer`, `operator`, `editor`, `admin`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }

    /// A role from its name; `None` for any other text.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s.trim())
    }

    /// Whether this role includes `needed`.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a request does. Each action has exactly one role, here: the REST API's route table
/// (`server::auth::need`) and every server function (`app::auth::require`) ask this, so the
/// two front doors cannot disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read workflows, runs, charts; validate a document without saving it.
    Read,
    /// Trigger, cancel and retry runs.
    Operate,
    /// Create, edit, archive and restore workflows.
    Edit,
    /// Users, API tokens, secrets, workers.
    Administer,
}

impl Action {
    /// The smallest role that may take this action.
    pub fn role(self) -> Role {
        match self {
            Action::Read => Role::Viewer,
            Action::Operate => Role::Operator,
            Action::Edit => Role::Editor,
            Action::Administer => Role::Admin,
        }
    }
}

/// Shortest password accepted (NIST SP 800-63B's minimum).
pub const MIN_PASSWORD: usize = 8;
/// Longest password accepted, in bytes: argon2 hashes it all, so it is bounded.
pub const MAX_PASSWORD: usize = 1024;

/// The password rule, for the set-up form, the admin's user form and the REST API alike.
pub fn check_password(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD {
        Err(format!(
            "The password must be at least {MIN_PASSWORD} characters."
        ))
    } else if password.len() > MAX_PASSWORD {
        Err(format!(
            "The password must be at most {MAX_PASSWORD} bytes."
        ))
    } else {
        Ok(())
    }
}

/// How a request proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// A signed-in browser's session cookie.
    Session,
    /// An API token (`Authorization: Bearer fs_…`).
    Token,
    /// Sign-in is off (the embedded default on loopback): everyone is this admin.
    Open,
}

/// Who is making a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Principal {
    /// The user's name, or the token's name.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// How it proved who it is.
    pub via: Via,
}

impl Principal {
    /// What a run records as its actor: `alice`, `token:ci`, or none when sign-in is off.
    pub fn actor(&self) -> Option<String> {
        match self.via {
            Via::Session => Some(self.name.clone()),
            Via::Token => Some(format!("token:{}", self.name)),
            Via::Open => None,
        }
    }
}

/// A user as the admin page lists them (never with the password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserInfo {
    /// Its id.
    pub id: i64,
    /// Its sign-in name.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// When it was created (unix ms).
    pub created_at: i64,
}

/// An API token as listed (its value is shown once, at creation, and never stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenInfo {
    /// Its id.
    pub id: i64,
    /// Its name (`token:<name>` as a run's actor).
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// Who created it.
    pub created_by: Option<String>,
    /// When it was created (unix ms).
    pub created_at: i64,
    /// When it was last used (unix ms).
    pub last_used_at: Option<i64>,
    /// When it was revoked (unix ms).
    pub revoked_at: Option<i64>,
}

/// A stored secret as listed: its name and history, never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SecretInfo {
    /// Its name (`{{ secrets.<name> }}`).
    pub name: String,
    /// When it was last set (unix ms).
    pub updated_at: i64,
    /// Who last set it.
    pub updated_by: Option<String>,
    /// Set by the server's configuration (`FLOWSCOPE_SECRET_<NAME>`), not editable here.
    pub from_config: bool,
}

/// A user or token name: 1–64 characters of letters, digits, `.`, `_`, `-`, `@`.
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} \"{name}\" must be 1–64 characters of letters, digits, '.', '_', '-' or '@'"
        ))
    }
}

/// A secret's name as templates reference it (`{{ secrets.NAME }}`): an identifier.
pub fn check_secret_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = name.len() <= 64
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "secret name \"{name}\" must start with a letter or '_' and hold only letters, digits and '_' (at most 64)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_round_trip() {
        assert!(Role::Admin.allows(Role::Editor));
        assert!(Role::Operator.allows(Role::Viewer));
        assert!(!Role::Viewer.allows(Role::Operator));
        assert!(!Role::Editor.allows(Role::Admin));
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("user", "alice@example.com").is_ok());
        assert!(check_name("user", "").is_err());
        assert!(check_name("user", "a b").is_err());
        assert!(check_secret_name("SLACK_URL").is_ok());
        assert!(check_secret_name("1X").is_err());
        assert!(check_secret_name("a-b").is_err());
    }
}
