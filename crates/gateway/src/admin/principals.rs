//! Who may do what on the admin API: principals with API tokens (random, shown once, stored as
//! argon2 hashes, optional expiry, revocable) and roles, and the one table that says which role
//! every route needs. A route missing from the table is refused (fail closed).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::http::Method;
use portcullis_store::{Store, TokenRecord};

pub use crate::api_types::Role;

#[derive(Clone, Debug)]
pub struct Principal {
    /// `bootstrap@<node>`, or `token:<name> (<id>)`.
    pub name: String,
    pub role: Role,
    /// The tenant of a tenant role.
    pub tenant: Option<String>,
}

impl Principal {
    /// The name with the node that acted (`released_by`): the bootstrap principal names its
    /// node already (`bootstrap@NODE`), a token's is followed by ` on NODE`.
    pub fn on_node(&self, node: &str) -> String {
        if self.name.ends_with(&format!("@{node}")) {
            self.name.clone()
        } else {
            format!("{} on {node}", self.name)
        }
    }

    pub fn is_operator(&self) -> bool {
        self.role == Role::Operator
    }
}

/// What a route needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    Operator,
    /// One of these roles for the tenant in the path (`{t}`), or the operator.
    Tenant(&'static [Role]),
}

const ANY: &[Role] = &[
    Role::OrgAdmin,
    Role::OrgConfig,
    Role::MailFlow,
    Role::QuarantineAdmin,
    Role::Viewer,
];
const FLOW: &[Role] = &[Role::OrgAdmin, Role::MailFlow];
const CONFIG: &[Role] = &[Role::OrgAdmin, Role::OrgConfig];
const QUARANTINE: &[Role] = &[Role::OrgAdmin, Role::QuarantineAdmin];
const READ_AUDIT: &[Role] = &[Role::OrgAdmin, Role::OrgConfig, Role::Viewer];

/// Every route of the admin API with the role it needs. `template` is axum's matched path.
pub const ROUTES: &[(&str, &str, Need)] = &[
    ("GET", "/api/v1/config", Need::Operator),
    ("GET", "/api/v1/tenants", Need::Operator),
    ("POST", "/api/v1/tenants", Need::Operator),
    ("GET", "/api/v1/tenants/{t}", Need::Tenant(ANY)),
    ("PATCH", "/api/v1/tenants/{t}", Need::Tenant(FLOW)),
    ("DELETE", "/api/v1/tenants/{t}", Need::Operator),
    ("GET", "/api/v1/tenants/{t}/summary", Need::Tenant(ANY)),
    ("GET", "/api/v1/tenants/{t}/domains", Need::Tenant(ANY)),
    ("POST", "/api/v1/tenants/{t}/domains", Need::Tenant(FLOW)),
    (
        "POST",
        "/api/v1/tenants/{t}/domains/{d}/verify",
        Need::Tenant(FLOW),
    ),
    (
        "PATCH",
        "/api/v1/tenants/{t}/domains/{d}",
        Need::Tenant(FLOW),
    ),
    (
        "DELETE",
        "/api/v1/tenants/{t}/domains/{d}",
        Need::Tenant(FLOW),
    ),
    ("GET", "/api/v1/tenants/{t}/org", Need::Tenant(ANY)),
    ("PATCH", "/api/v1/tenants/{t}/org", Need::Tenant(CONFIG)),
    ("GET", "/api/v1/tenants/{t}/connectors", Need::Tenant(ANY)),
    ("POST", "/api/v1/tenants/{t}/connectors", Need::Tenant(FLOW)),
    (
        "GET",
        "/api/v1/tenants/{t}/connectors/{c}",
        Need::Tenant(ANY),
    ),
    (
        "PATCH",
        "/api/v1/tenants/{t}/connectors/{c}",
        Need::Tenant(FLOW),
    ),
    (
        "DELETE",
        "/api/v1/tenants/{t}/connectors/{c}",
        Need::Tenant(FLOW),
    ),
    ("GET", "/api/v1/tenants/{t}/recipients", Need::Tenant(ANY)),
    ("POST", "/api/v1/tenants/{t}/recipients", Need::Tenant(FLOW)),
    ("GET", "/api/v1/tenants/{t}/trace", Need::Tenant(ANY)),
    ("GET", "/api/v1/tenants/{t}/trace/{id}", Need::Tenant(ANY)),
    ("POST", "/api/v1/tenants/{t}/simulate", Need::Tenant(ANY)),
    (
        "POST",
        "/api/v1/tenants/{t}/simulate/replay",
        Need::Tenant(ANY),
    ),
    (
        "GET",
        "/api/v1/tenants/{t}/reports/direct-send",
        Need::Tenant(ANY),
    ),
    (
        "GET",
        "/api/v1/tenants/{t}/reports/daily",
        Need::Tenant(ANY),
    ),
    (
        "GET",
        "/api/v1/tenants/{t}/reports/unknown-recipients",
        Need::Tenant(ANY),
    ),
    (
        "POST",
        "/api/v1/tenants/{t}/reports/direct-send/suggest",
        Need::Tenant(FLOW),
    ),
    ("GET", "/api/v1/tenants/{t}/readiness", Need::Tenant(ANY)),
    ("GET", "/api/v1/tenants/{t}/rules", Need::Tenant(ANY)),
    ("POST", "/api/v1/tenants/{t}/rules", Need::Tenant(FLOW)),
    ("GET", "/api/v1/tenants/{t}/rules/{name}", Need::Tenant(ANY)),
    (
        "PUT",
        "/api/v1/tenants/{t}/rules/{name}",
        Need::Tenant(FLOW),
    ),
    (
        "DELETE",
        "/api/v1/tenants/{t}/rules/{name}",
        Need::Tenant(FLOW),
    ),
    (
        "GET",
        "/api/v1/tenants/{t}/quarantine",
        Need::Tenant(QUARANTINE),
    ),
    (
        "GET",
        "/api/v1/tenants/{t}/quarantine/{id}",
        Need::Tenant(QUARANTINE),
    ),
    (
        "DELETE",
        "/api/v1/tenants/{t}/quarantine/{id}",
        Need::Tenant(QUARANTINE),
    ),
    (
        "POST",
        "/api/v1/tenants/{t}/quarantine/{id}/release",
        Need::Tenant(QUARANTINE),
    ),
    ("GET", "/api/v1/tenants/{t}/audit", Need::Tenant(READ_AUDIT)),
    ("GET", "/api/v1/audit", Need::Operator),
    ("GET", "/api/v1/queue", Need::Operator),
    ("POST", "/api/v1/queue/retry", Need::Operator),
    ("POST", "/api/v1/queue/reroute", Need::Operator),
    ("POST", "/api/v1/queue/{id}/reroute", Need::Operator),
    ("GET", "/api/v1/queue/{id}", Need::Operator),
    ("DELETE", "/api/v1/queue/{id}", Need::Operator),
    ("POST", "/api/v1/queue/{id}/retry", Need::Operator),
    ("GET", "/api/v1/tokens", Need::Operator),
    ("POST", "/api/v1/tokens", Need::Operator),
    ("DELETE", "/api/v1/tokens/{id}", Need::Operator),
    ("GET", "/api/v1/routes", Need::Operator),
    ("GET", "/metrics", Need::Operator),
];

/// The role a route needs; `None`: not in the table (refused).
pub fn need(method: &Method, template: &str) -> Option<Need> {
    ROUTES
        .iter()
        .find(|(m, t, _)| *m == method.as_str() && *t == template)
        .map(|(_, _, n)| *n)
}

/// May `p` call a route needing `need` for `tenant` (the path's `{t}`)?
pub fn allows(p: &Principal, need: Need, tenant: Option<&str>) -> bool {
    if p.is_operator() {
        return true;
    }
    match need {
        Need::Operator => false,
        Need::Tenant(roles) => {
            tenant.is_some() && p.tenant.as_deref() == tenant && roles.contains(&p.role)
        }
    }
}

/// Verifies tokens: the bootstrap token, and API tokens `pc_<id>_<secret>` against their argon2
/// hash. Verified tokens are remembered for 30 s (argon2 is deliberately slow); revoking clears it.
pub struct Tokens {
    bootstrap: String,
    /// `bootstrap@<node>`: each node's bootstrap token is its own principal.
    bootstrap_name: String,
    store: Store,
    cache: Mutex<HashMap<String, Verified>>,
}

/// Verified tokens remembered at most.
const CACHE_ENTRIES: usize = 10_000;

/// A token whose secret was verified against its stored hash, and the hash it was verified
/// against (a record replaced under the same id must verify again).
type Verified = (Principal, String);

impl Tokens {
    pub fn new(bootstrap: String, node: &str, store: Store) -> Tokens {
        Tokens {
            bootstrap,
            bootstrap_name: format!("bootstrap@{node}"),
            store,
            cache: Mutex::default(),
        }
    }

    /// The principal of a presented token. Its record is read from the database on every
    /// request, so a revocation or expiry — made on any node — takes effect at once; only the
    /// argon2 verification of the secret (the expensive part) is remembered.
    pub async fn authenticate(&self, presented: &str) -> Option<Principal> {
        if constant_time_eq(presented.as_bytes(), self.bootstrap.as_bytes()) {
            return Some(Principal {
                name: self.bootstrap_name.clone(),
                role: Role::Operator,
                tenant: None,
            });
        }
        let rest = presented.strip_prefix("pc_")?;
        let (id, _secret) = rest.split_once('_')?;
        let rec = self.store.get_token(id).await.ok()??;
        let now = crate::sys::clock::now_unix();
        if rec.revoked || rec.expires_at.is_some_and(|e| e <= now) {
            return None;
        }
        let known = self
            .cache
            .lock()
            .expect("not poisoned")
            .get(presented)
            .filter(|(_, hash)| *hash == rec.hash)
            .map(|(p, _)| p.clone());
        if let Some(p) = known {
            return Some(p);
        }
        let hash = PasswordHash::new(&rec.hash).ok()?;
        Argon2::default()
            .verify_password(presented.as_bytes(), &hash)
            .ok()?;
        let p = principal_of(&rec)?;
        let mut cache = self.cache.lock().expect("not poisoned");
        // Bounded: a flood of distinct valid tokens cannot grow it without end.
        if cache.len() >= CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(presented.to_string(), (p.clone(), rec.hash));
        Some(p)
    }

    /// What a console session made with this (authenticated) token stands for: `token:<id>`,
    /// or `bootstrap:<hash>` for the bootstrap token (a changed token file ends its sessions).
    pub fn session_key(&self, presented: &str) -> String {
        match presented
            .strip_prefix("pc_")
            .and_then(|rest| rest.split_once('_'))
        {
            Some((id, _)) => format!("token:{id}"),
            None => format!("bootstrap:{}", sha256_hex(self.bootstrap.as_bytes())),
        }
    }

    /// The principal of a console session's key ([`Tokens::session_key`]), read afresh: a token
    /// revoked or expired since the login — on any node — gives none.
    pub async fn session_principal(&self, key: &str) -> Option<Principal> {
        if let Some(hash) = key.strip_prefix("bootstrap:") {
            let ours = sha256_hex(self.bootstrap.as_bytes());
            return constant_time_eq(hash.as_bytes(), ours.as_bytes()).then(|| Principal {
                name: self.bootstrap_name.clone(),
                role: Role::Operator,
                tenant: None,
            });
        }
        let id = key.strip_prefix("token:")?;
        let rec = self.store.get_token(id).await.ok()??;
        let now = crate::sys::clock::now_unix();
        if rec.revoked || rec.expires_at.is_some_and(|e| e <= now) {
            return None;
        }
        principal_of(&rec)
    }

    /// Creates a token; returns its record and the token itself (shown once).
    pub async fn create(
        &self,
        name: &str,
        role: Role,
        tenant: Option<String>,
        expires: Option<Duration>,
    ) -> anyhow::Result<(TokenRecord, String)> {
        let id = format!("{:08x}", rand::random::<u32>());
        let secret: String = (0..24)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        let token = format!("pc_{id}_{secret}");
        let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let hash = Argon2::default()
            .hash_password(token.as_bytes(), &salt)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .to_string();
        let now = crate::sys::clock::now_unix();
        let rec = TokenRecord {
            id,
            name: name.to_string(),
            role: role.as_str().to_string(),
            tenant,
            hash,
            created_at: now,
            expires_at: expires.map(|d| now + d.as_secs() as i64),
            revoked: false,
        };
        self.store.add_token(&rec).await?;
        Ok((rec, token))
    }

    pub async fn revoke(&self, id: &str) -> portcullis_store::Result<()> {
        self.store.revoke_token(id).await?;
        self.cache.lock().expect("not poisoned").clear();
        // Its console sessions would be refused anyway (checked on every request); removed
        // so that nothing stays behind.
        self.store
            .remove_console_sessions_of(&format!("token:{id}"))
            .await?;
        Ok(())
    }
}

fn principal_of(rec: &TokenRecord) -> Option<Principal> {
    Some(Principal {
        name: format!("token:{} ({})", rec.name, rec.id),
        role: Role::parse(&rec.role)?,
        tenant: rec.tenant.clone(),
    })
}

/// Lower-case hex SHA-256: what is stored of secrets that need no slow hash (console session
/// ids are 256 random bits).
pub fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
