//! Tenants, accepted domains, connectors and org settings. Every write bumps the directory
//! generation in the same transaction, so every node can notice a change by polling one row.

use portcullis_policy::rules::Rule;
use portcullis_policy::{AcceptedDomain, Connector, OrgSettings, Tenant, names};
use sqlx::{Any, Transaction};

use crate::{Backend, Result, Store, StoreError, from_json, to_json};

/// Everything needed to build a `policy::Directory`.
#[derive(Clone, Debug, Default)]
pub struct DirectoryData {
    pub generation: u64,
    pub tenants: Vec<Tenant>,
    pub domains: Vec<AcceptedDomain>,
    pub connectors: Vec<Connector>,
    pub rules: Vec<Rule>,
}

/// The PostgreSQL channel on which every directory change is announced (at its commit).
pub const DIRECTORY_CHANNEL: &str = "portcullis_directory";

pub(crate) async fn bump(tx: &mut Transaction<'_, Any>) -> Result<()> {
    sqlx::query("UPDATE meta SET value = value + 1 WHERE key = 'directory_generation'")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Announces a directory change to the other nodes (PostgreSQL: `NOTIFY`, delivered when the
/// transaction commits, never for one rolled back).
pub(crate) async fn announce(backend: Backend, tx: &mut Transaction<'_, Any>) -> Result<()> {
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_notify('portcullis_directory', '')")
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            d.is_unique_violation() || d.message().contains("UNIQUE constraint failed")
        }
        _ => false,
    }
}

impl Store {
    /// The current directory generation (changes on every directory write, by any node).
    pub async fn directory_generation(&self) -> Result<u64> {
        let (v,): (i64,) =
            sqlx::query_as("SELECT value FROM meta WHERE key = 'directory_generation'")
                .fetch_one(&self.pool)
                .await?;
        Ok(v as u64)
    }

    /// Loads the whole directory in one read transaction (a consistent version).
    pub async fn load_directory(&self) -> Result<DirectoryData> {
        let mut tx = self.pool.begin().await?;
        let (generation,): (i64,) =
            sqlx::query_as("SELECT value FROM meta WHERE key = 'directory_generation'")
                .fetch_one(&mut *tx)
                .await?;
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT name, settings FROM tenants ORDER BY name")
                .fetch_all(&mut *tx)
                .await?;
        let mut tenants = Vec::with_capacity(rows.len());
        for (name, settings) in rows {
            let settings = from_json(&format!("settings of tenant {name}"), &settings)?;
            tenants.push(Tenant { name, settings });
        }
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT doc FROM accepted_domains ORDER BY domain")
                .fetch_all(&mut *tx)
                .await?;
        let domains = rows
            .iter()
            .map(|(doc,)| from_json("accepted domain", doc))
            .collect::<Result<Vec<AcceptedDomain>>>()?;
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT doc FROM connectors ORDER BY tenant, name")
                .fetch_all(&mut *tx)
                .await?;
        let connectors = rows
            .iter()
            .map(|(doc,)| from_json("connector", doc))
            .collect::<Result<Vec<Connector>>>()?;
        let rows: Vec<(String,)> = sqlx::query_as("SELECT doc FROM rules ORDER BY tenant, name")
            .fetch_all(&mut *tx)
            .await?;
        let rules = rows
            .iter()
            .map(|(doc,)| from_json("rule", doc))
            .collect::<Result<Vec<Rule>>>()?;
        tx.commit().await?;
        Ok(DirectoryData {
            rules,
            generation: generation as u64,
            tenants,
            domains,
            connectors,
        })
    }

    /// Begins one change to one tenant's configuration, in one write transaction: the tenant's
    /// row is locked first (PostgreSQL: concurrent writers of one tenant go one after another;
    /// SQLite's write transactions are serial anyway) and its whole configuration read — the
    /// audit log's "before". [`TenantChange::commit`] bumps the generation, reads "after" and
    /// commits; dropping it instead rolls everything back.
    async fn tenant_change(&self, tenant: &str) -> Result<TenantChange> {
        let mut tx = self.begin_write().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT name FROM tenants WHERE name = $1 FOR UPDATE")
                .bind(tenant)
                .fetch_optional(&mut *tx)
                .await?;
        }
        let before = tenant_config(&mut tx, tenant).await?;
        announce(self.backend, &mut tx).await?;
        Ok(TenantChange {
            tx,
            tenant: tenant.to_string(),
            before,
        })
    }

    pub async fn add_tenant(&self, tenant: &Tenant, now_unix: i64) -> Result<Audited<()>> {
        let mut change = self.tenant_change(&tenant.name).await?;
        let tx = &mut change.tx;
        let value = async {
            let r =
                sqlx::query("INSERT INTO tenants (name, settings, created_at) VALUES ($1, $2, $3)")
                    .bind(&tenant.name)
                    .bind(to_json(&tenant.settings))
                    .bind(now_unix)
                    .execute(&mut **tx)
                    .await;
            match r {
                Err(e) if is_unique_violation(&e) => {
                    Err(StoreError::Conflict(format!("tenant {}", tenant.name)))
                }
                r => r.map(|_| ()).map_err(StoreError::from),
            }
        }
        .await?;
        change.commit(value).await
    }

    /// Removes a tenant with its domains and connectors (its trace stays until retention).
    pub async fn remove_tenant(&self, name: &str) -> Result<Audited<()>> {
        let mut change = self.tenant_change(name).await?;
        let tx = &mut change.tx;
        let value = async {
            // Explicit deletes rather than relying on ON DELETE CASCADE, which SQLite only
            // honours with foreign keys enabled on the connection.
            for sql in [
                "DELETE FROM accepted_domains WHERE tenant = $1",
                "DELETE FROM rules WHERE tenant = $1",
                "DELETE FROM connectors WHERE tenant = $1",
                "DELETE FROM recipients WHERE tenant = $1",
                "DELETE FROM recipient_lists WHERE tenant = $1",
            ] {
                sqlx::query(sql).bind(name).execute(&mut **tx).await?;
            }
            let r = sqlx::query("DELETE FROM tenants WHERE name = $1")
                .bind(name)
                .execute(&mut **tx)
                .await?;
            if r.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("tenant {name}")));
            }
            Ok(())
        }
        .await?;
        change.commit(value).await
    }

    /// Changes a tenant's org settings as they are in the database now: `f` gets the current
    /// settings (never a copy from a snapshot), and what it leaves is written in the same
    /// transaction. `f`'s error leaves everything as it was.
    pub async fn modify_org_settings<E: From<StoreError>>(
        &self,
        tenant: &str,
        f: impl FnOnce(&mut OrgSettings) -> std::result::Result<(), E>,
    ) -> std::result::Result<Audited<OrgSettings>, E> {
        let mut change = self.tenant_change(tenant).await?;
        let tx = &mut change.tx;
        let value = async {
            let row: Option<(String,)> =
                sqlx::query_as("SELECT settings FROM tenants WHERE name = $1")
                    .bind(tenant)
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(StoreError::from)?;
            let Some((doc,)) = row else {
                return Err(StoreError::NotFound(format!("tenant {tenant}")).into());
            };
            let mut settings: OrgSettings =
                from_json(&format!("settings of tenant {tenant}"), &doc)?;
            f(&mut settings)?;
            sqlx::query("UPDATE tenants SET settings = $1 WHERE name = $2")
                .bind(to_json(&settings))
                .bind(tenant)
                .execute(&mut **tx)
                .await
                .map_err(StoreError::from)?;
            Ok::<_, E>(settings)
        }
        .await?;
        Ok(change.commit(value).await?)
    }

    /// Replaces a tenant's org settings whole (for callers that own the whole value).
    pub async fn set_org_settings(
        &self,
        tenant: &str,
        settings: &OrgSettings,
    ) -> Result<Audited<OrgSettings>> {
        self.modify_org_settings(tenant, |s| {
            *s = settings.clone();
            Ok::<(), StoreError>(())
        })
        .await
    }

    /// Adds an accepted domain; a domain belongs to at most one tenant. The operator's way:
    /// a domain inside or above another tenant's is allowed (see [`Store::add_domain_as`]).
    pub async fn add_domain(&self, d: &AcceptedDomain) -> Result<Audited<Vec<String>>> {
        self.add_domain_as(d, true).await
    }

    /// Adds an accepted domain and returns the other tenants' domains it overlaps (one inside
    /// the other). Without `may_overlap` (a tenant role) any overlap refuses it: a tenant must
    /// never take mail of a subdomain another tenant covers, nor claim a parent of another's.
    /// Checked in the write's transaction, against the database.
    pub async fn add_domain_as(
        &self,
        d: &AcceptedDomain,
        may_overlap: bool,
    ) -> Result<Audited<Vec<String>>> {
        let mut change = self.tenant_change(&d.tenant).await?;
        let tx = &mut change.tx;
        let value = async {
            let exists: Option<(String,)> =
                sqlx::query_as("SELECT name FROM tenants WHERE name = $1")
                    .bind(&d.tenant)
                    .fetch_optional(&mut **tx)
                    .await?;
            if exists.is_none() {
                return Err(StoreError::NotFound(format!("tenant {}", d.tenant)));
            }
            let others: Vec<(String,)> =
                sqlx::query_as("SELECT domain FROM accepted_domains WHERE tenant <> $1")
                    .bind(&d.tenant)
                    .fetch_all(&mut **tx)
                    .await?;
            let overlaps: Vec<String> = others
                .into_iter()
                .map(|(o,)| o)
                .filter(|o| {
                    o != &d.domain
                        && (names::is_same_or_subdomain(&d.domain, o)
                            || names::is_same_or_subdomain(o, &d.domain))
                })
                .collect();
            if !may_overlap && !overlaps.is_empty() {
                // Which tenant holds it is not this tenant's to know.
                return Err(StoreError::Overlap(format!(
                    "accepted domain {} overlaps a domain of another tenant (one inside the other); only the operator can add it",
                    d.domain
                )));
            }
            let r = sqlx::query(
                "INSERT INTO accepted_domains (domain, tenant, doc) VALUES ($1, $2, $3)",
            )
            .bind(&d.domain)
            .bind(&d.tenant)
            .bind(to_json(d))
            .execute(&mut **tx)
            .await;
            match r {
                Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!(
                    "accepted domain {}",
                    d.domain
                ))),
                r => r.map(|_| overlaps).map_err(StoreError::from),
            }
        }
        .await?;
        change.commit(value).await
    }

    /// Changes an accepted domain of a tenant as it is in the database now (see
    /// [`Store::modify_org_settings`]).
    pub async fn modify_domain<E: From<StoreError>>(
        &self,
        tenant: &str,
        domain: &str,
        f: impl FnOnce(&mut AcceptedDomain) -> std::result::Result<(), E>,
    ) -> std::result::Result<Audited<AcceptedDomain>, E> {
        let mut change = self.tenant_change(tenant).await?;
        let tx = &mut change.tx;
        let value = async {
            let row: Option<(String,)> = sqlx::query_as(
                "SELECT doc FROM accepted_domains WHERE tenant = $1 AND domain = $2",
            )
            .bind(tenant)
            .bind(domain)
            .fetch_optional(&mut **tx)
            .await
            .map_err(StoreError::from)?;
            let Some((doc,)) = row else {
                let what = format!("accepted domain {domain} of tenant {tenant}");
                return Err(StoreError::NotFound(what).into());
            };
            let mut d: AcceptedDomain = from_json("accepted domain", &doc)?;
            f(&mut d)?;
            // The key columns stay the key: `f` changes the document only.
            d.domain = domain.to_string();
            d.tenant = tenant.to_string();
            sqlx::query("UPDATE accepted_domains SET doc = $1 WHERE tenant = $2 AND domain = $3")
                .bind(to_json(&d))
                .bind(tenant)
                .bind(domain)
                .execute(&mut **tx)
                .await
                .map_err(StoreError::from)?;
            Ok::<_, E>(d)
        }
        .await?;
        Ok(change.commit(value).await?)
    }

    /// Replaces an accepted domain's document (its route), within its tenant.
    pub async fn update_domain(&self, d: &AcceptedDomain) -> Result<Audited<AcceptedDomain>> {
        self.modify_domain(&d.tenant, &d.domain, |x| {
            *x = d.clone();
            Ok::<(), StoreError>(())
        })
        .await
    }

    pub async fn remove_domain(&self, tenant: &str, domain: &str) -> Result<Audited<()>> {
        let mut change = self.tenant_change(tenant).await?;
        let tx = &mut change.tx;
        let value = async {
            let r = sqlx::query("DELETE FROM accepted_domains WHERE tenant = $1 AND domain = $2")
                .bind(tenant)
                .bind(domain)
                .execute(&mut **tx)
                .await?;
            if r.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!(
                    "accepted domain {domain} of tenant {tenant}"
                )));
            }
            Ok(())
        }
        .await?;
        change.commit(value).await
    }

    /// Creates (`create = true`) or replaces an existing connector.
    pub async fn put_connector(&self, c: &Connector, create: bool) -> Result<Audited<()>> {
        self.put_named(Named::Connector, &c.tenant, &c.name, &to_json(c), create)
            .await
    }

    /// Changes a connector as it is in the database now (see [`Store::modify_org_settings`]).
    pub async fn modify_connector<E: From<StoreError>>(
        &self,
        tenant: &str,
        name: &str,
        f: impl FnOnce(&mut Connector) -> std::result::Result<(), E>,
    ) -> std::result::Result<Audited<Connector>, E> {
        let key = |c: &mut Connector, t: &str, n: &str| {
            c.tenant = t.to_string();
            c.name = n.to_string();
        };
        self.modify_named(Named::Connector, tenant, name, key, f)
            .await
    }

    pub async fn remove_connector(&self, tenant: &str, name: &str) -> Result<Audited<()>> {
        self.remove_named(Named::Connector, tenant, name).await
    }

    /// Creates (`create = true`) or replaces an existing rule.
    pub async fn put_rule(&self, r: &Rule, create: bool) -> Result<Audited<()>> {
        self.put_named(Named::Rule, &r.tenant, &r.name, &to_json(r), create)
            .await
    }

    /// Changes a rule as it is in the database now (see [`Store::modify_org_settings`]); `f`
    /// may refuse (for a compare-and-set against the version its caller read).
    pub async fn modify_rule<E: From<StoreError>>(
        &self,
        tenant: &str,
        name: &str,
        f: impl FnOnce(&mut Rule) -> std::result::Result<(), E>,
    ) -> std::result::Result<Audited<Rule>, E> {
        let key = |r: &mut Rule, t: &str, n: &str| {
            r.tenant = t.to_string();
            r.name = n.to_string();
        };
        self.modify_named(Named::Rule, tenant, name, key, f).await
    }

    /// The one read-change-write of a tenant's named JSON document (connector, rule), in one
    /// tenant change; `key` puts the tenant and name back, whatever `f` did to them.
    async fn modify_named<T, E>(
        &self,
        kind: Named,
        tenant: &str,
        name: &str,
        key: impl FnOnce(&mut T, &str, &str),
        f: impl FnOnce(&mut T) -> std::result::Result<(), E>,
    ) -> std::result::Result<Audited<T>, E>
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
        E: From<StoreError>,
    {
        let mut change = self.tenant_change(tenant).await?;
        let tx = &mut change.tx;
        let value = async {
            let row: Option<(String,)> = sqlx::query_as(kind.sql().4)
                .bind(tenant)
                .bind(name)
                .fetch_optional(&mut **tx)
                .await
                .map_err(StoreError::from)?;
            let Some((doc,)) = row else {
                let what = format!("{} {name} of tenant {tenant}", kind.what());
                return Err(StoreError::NotFound(what).into());
            };
            let mut value: T = from_json(kind.what(), &doc)?;
            f(&mut value)?;
            key(&mut value, tenant, name);
            sqlx::query(kind.sql().2)
                .bind(to_json(&value))
                .bind(tenant)
                .bind(name)
                .execute(&mut **tx)
                .await
                .map_err(StoreError::from)?;
            Ok::<_, E>(value)
        }
        .await?;
        Ok(change.commit(value).await?)
    }

    pub async fn remove_rule(&self, tenant: &str, name: &str) -> Result<Audited<()>> {
        self.remove_named(Named::Rule, tenant, name).await
    }

    /// The one create-or-replace of a tenant's named JSON document (connector, rule).
    async fn put_named(
        &self,
        kind: Named,
        tenant: &str,
        name: &str,
        doc: &str,
        create: bool,
    ) -> Result<Audited<()>> {
        let mut change = self.tenant_change(tenant).await?;
        let tx = &mut change.tx;
        let value = async {
            let owner: Option<(String,)> =
                sqlx::query_as("SELECT name FROM tenants WHERE name = $1")
                    .bind(tenant)
                    .fetch_optional(&mut **tx)
                    .await?;
            if owner.is_none() {
                return Err(StoreError::NotFound(format!("tenant {tenant}")));
            }
            let existing: Option<(String,)> = sqlx::query_as(kind.sql().0)
                .bind(tenant)
                .bind(name)
                .fetch_optional(&mut **tx)
                .await?;
            let what = kind.what();
            match (create, existing.is_some()) {
                (true, true) => Err(StoreError::Conflict(format!("{what} {name}"))),
                (false, false) => Err(StoreError::NotFound(format!(
                    "{what} {name} of tenant {tenant}"
                ))),
                (true, false) => {
                    sqlx::query(kind.sql().1)
                        .bind(tenant)
                        .bind(name)
                        .bind(doc)
                        .execute(&mut **tx)
                        .await?;
                    Ok(())
                }
                (false, true) => {
                    sqlx::query(kind.sql().2)
                        .bind(doc)
                        .bind(tenant)
                        .bind(name)
                        .execute(&mut **tx)
                        .await?;
                    Ok(())
                }
            }
        }
        .await?;
        change.commit(value).await
    }

    async fn remove_named(&self, kind: Named, tenant: &str, name: &str) -> Result<Audited<()>> {
        let mut change = self.tenant_change(tenant).await?;
        let tx = &mut change.tx;
        let value = async {
            let r = sqlx::query(kind.sql().3)
                .bind(tenant)
                .bind(name)
                .execute(&mut **tx)
                .await?;
            if r.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!(
                    "{} {name} of tenant {tenant}",
                    kind.what()
                )));
            }
            Ok(())
        }
        .await?;
        change.commit(value).await
    }
}

/// A tenant's whole configuration (settings, domains, connectors, rules) as the audit log shows
/// it; `None` when there is no such tenant.
async fn tenant_config(
    tx: &mut Transaction<'static, Any>,
    tenant: &str,
) -> Result<Option<serde_json::Value>> {
    let row: Option<(String,)> = sqlx::query_as("SELECT settings FROM tenants WHERE name = $1")
        .bind(tenant)
        .fetch_optional(&mut **tx)
        .await?;
    let Some((settings,)) = row else {
        return Ok(None);
    };
    let settings: OrgSettings = from_json(&format!("settings of tenant {tenant}"), &settings)?;
    let mut docs = async |sql: &'static str| -> Result<Vec<serde_json::Value>> {
        let rows: Vec<(String,)> = sqlx::query_as(sql)
            .bind(tenant)
            .fetch_all(&mut **tx)
            .await?;
        rows.iter()
            .map(|(doc,)| from_json("document", doc))
            .collect()
    };
    let domains =
        docs("SELECT doc FROM accepted_domains WHERE tenant = $1 ORDER BY domain").await?;
    let connectors = docs("SELECT doc FROM connectors WHERE tenant = $1 ORDER BY name").await?;
    let rules = docs("SELECT doc FROM rules WHERE tenant = $1 ORDER BY name").await?;
    Ok(Some(serde_json::json!({
        "tenant": Tenant { name: tenant.to_string(), settings },
        "domains": domains,
        "connectors": connectors,
        "rules": rules,
    })))
}

/// A change to one tenant in progress (see [`Store::tenant_change`]).
struct TenantChange {
    tx: Transaction<'static, Any>,
    tenant: String,
    before: Option<serde_json::Value>,
}

impl TenantChange {
    /// Bumps the directory generation, reads the tenant's configuration after the change and
    /// commits.
    async fn commit<T>(mut self, value: T) -> Result<Audited<T>> {
        bump(&mut self.tx).await?;
        let after = tenant_config(&mut self.tx, &self.tenant).await?;
        self.tx.commit().await?;
        Ok(Audited {
            value,
            before: self.before,
            after,
        })
    }
}

/// What a change returns, with the tenant's configuration before and after it as the database
/// had it inside the change's transaction: what the audit log records.
#[derive(Clone, Debug, Default)]
pub struct Audited<T> {
    pub value: T,
    /// `None` when the tenant did not exist (it was being created).
    pub before: Option<serde_json::Value>,
    /// `None` when the tenant no longer exists (it was removed).
    pub after: Option<serde_json::Value>,
}

/// The tables of per-tenant named documents: `(tenant, name, doc)`.
#[derive(Clone, Copy)]
enum Named {
    Connector,
    Rule,
}

impl Named {
    fn what(self) -> &'static str {
        match self {
            Named::Connector => "connector",
            Named::Rule => "rule",
        }
    }

    /// (select, insert, update, delete, select the document); static strings, so no table name
    /// is ever interpolated.
    fn sql(
        self,
    ) -> (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
    ) {
        match self {
            Named::Connector => (
                "SELECT name FROM connectors WHERE tenant = $1 AND name = $2",
                "INSERT INTO connectors (tenant, name, doc) VALUES ($1, $2, $3)",
                "UPDATE connectors SET doc = $1 WHERE tenant = $2 AND name = $3",
                "DELETE FROM connectors WHERE tenant = $1 AND name = $2",
                "SELECT doc FROM connectors WHERE tenant = $1 AND name = $2",
            ),
            Named::Rule => (
                "SELECT name FROM rules WHERE tenant = $1 AND name = $2",
                "INSERT INTO rules (tenant, name, doc) VALUES ($1, $2, $3)",
                "UPDATE rules SET doc = $1 WHERE tenant = $2 AND name = $3",
                "DELETE FROM rules WHERE tenant = $1 AND name = $2",
                "SELECT doc FROM rules WHERE tenant = $1 AND name = $2",
            ),
        }
    }
}

/// Directory changes announced by any node (PostgreSQL `LISTEN`); SQLite has no other nodes.
pub struct DirectoryListener {
    listener: sqlx::postgres::PgListener,
}

impl DirectoryListener {
    /// Waits for the next announced change (several at once come as one or several).
    pub async fn changed(&mut self) -> Result<()> {
        self.listener.recv().await?;
        Ok(())
    }
}

impl Store {
    /// Listens for directory changes made by any node; `None` on SQLite (single node).
    pub async fn listen_directory(&self) -> Result<Option<DirectoryListener>> {
        if self.backend != Backend::Postgres {
            return Ok(None);
        }
        let mut listener = sqlx::postgres::PgListener::connect(&self.url).await?;
        listener.listen(DIRECTORY_CHANNEL).await?;
        Ok(Some(DirectoryListener { listener }))
    }
}
