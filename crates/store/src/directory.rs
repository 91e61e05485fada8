//! Tenants, accepted domains, connectors and org settings. Every write bumps the directory
//! generation in the same transaction, so every node can notice a change by polling one row.

use portcullis_policy::rules::Rule;
use portcullis_policy::{AcceptedDomain, Connector, OrgSettings, Tenant};
use sqlx::{Any, Transaction};

use crate::{Result, Store, StoreError, from_json, to_json};

/// Everything needed to build a `policy::Directory`.
#[derive(Clone, Debug, Default)]
pub struct DirectoryData {
    pub generation: u64,
    pub tenants: Vec<Tenant>,
    pub domains: Vec<AcceptedDomain>,
    pub connectors: Vec<Connector>,
    pub rules: Vec<Rule>,
}

async fn bump(tx: &mut Transaction<'_, Any>) -> Result<()> {
    sqlx::query("UPDATE meta SET value = value + 1 WHERE key = 'directory_generation'")
        .execute(&mut **tx)
        .await?;
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

    pub async fn add_tenant(&self, tenant: &Tenant, now_unix: i64) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let r = sqlx::query("INSERT INTO tenants (name, settings, created_at) VALUES ($1, $2, $3)")
            .bind(&tenant.name)
            .bind(to_json(&tenant.settings))
            .bind(now_unix)
            .execute(&mut *tx)
            .await;
        match r {
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Conflict(format!("tenant {}", tenant.name)));
            }
            r => r?,
        };
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes a tenant with its domains and connectors (its trace stays until retention).
    pub async fn remove_tenant(&self, name: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        // Explicit deletes rather than relying on ON DELETE CASCADE, which SQLite only honours
        // with foreign keys enabled on the connection.
        sqlx::query("DELETE FROM accepted_domains WHERE tenant = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM rules WHERE tenant = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM connectors WHERE tenant = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let r = sqlx::query("DELETE FROM tenants WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("tenant {name}")));
        }
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn set_org_settings(&self, tenant: &str, settings: &OrgSettings) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let r = sqlx::query("UPDATE tenants SET settings = $1 WHERE name = $2")
            .bind(to_json(settings))
            .bind(tenant)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("tenant {tenant}")));
        }
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Adds an accepted domain; a domain belongs to at most one tenant.
    pub async fn add_domain(&self, d: &AcceptedDomain) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let exists: Option<(String,)> = sqlx::query_as("SELECT name FROM tenants WHERE name = $1")
            .bind(&d.tenant)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound(format!("tenant {}", d.tenant)));
        }
        let r =
            sqlx::query("INSERT INTO accepted_domains (domain, tenant, doc) VALUES ($1, $2, $3)")
                .bind(&d.domain)
                .bind(&d.tenant)
                .bind(to_json(d))
                .execute(&mut *tx)
                .await;
        match r {
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Conflict(format!(
                    "accepted domain {}",
                    d.domain
                )));
            }
            r => r?,
        };
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Replaces an accepted domain's document (its route), within its tenant.
    pub async fn update_domain(&self, d: &AcceptedDomain) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let r =
            sqlx::query("UPDATE accepted_domains SET doc = $1 WHERE tenant = $2 AND domain = $3")
                .bind(to_json(d))
                .bind(&d.tenant)
                .bind(&d.domain)
                .execute(&mut *tx)
                .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!(
                "accepted domain {} of tenant {}",
                d.domain, d.tenant
            )));
        }
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn remove_domain(&self, tenant: &str, domain: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let r = sqlx::query("DELETE FROM accepted_domains WHERE tenant = $1 AND domain = $2")
            .bind(tenant)
            .bind(domain)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!(
                "accepted domain {domain} of tenant {tenant}"
            )));
        }
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Creates (`create = true`) or replaces an existing connector.
    pub async fn put_connector(&self, c: &Connector, create: bool) -> Result<()> {
        self.put_named(Named::Connector, &c.tenant, &c.name, &to_json(c), create)
            .await
    }

    pub async fn remove_connector(&self, tenant: &str, name: &str) -> Result<()> {
        self.remove_named(Named::Connector, tenant, name).await
    }

    /// Creates (`create = true`) or replaces an existing rule.
    pub async fn put_rule(&self, r: &Rule, create: bool) -> Result<()> {
        self.put_named(Named::Rule, &r.tenant, &r.name, &to_json(r), create)
            .await
    }

    pub async fn remove_rule(&self, tenant: &str, name: &str) -> Result<()> {
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
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let owner: Option<(String,)> = sqlx::query_as("SELECT name FROM tenants WHERE name = $1")
            .bind(tenant)
            .fetch_optional(&mut *tx)
            .await?;
        if owner.is_none() {
            return Err(StoreError::NotFound(format!("tenant {tenant}")));
        }
        let existing: Option<(String,)> = sqlx::query_as(kind.sql().0)
            .bind(tenant)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        let what = kind.what();
        match (create, existing.is_some()) {
            (true, true) => return Err(StoreError::Conflict(format!("{what} {name}"))),
            (false, false) => {
                return Err(StoreError::NotFound(format!(
                    "{what} {name} of tenant {tenant}"
                )));
            }
            (true, false) => {
                sqlx::query(kind.sql().1)
                    .bind(tenant)
                    .bind(name)
                    .bind(doc)
                    .execute(&mut *tx)
                    .await?;
            }
            (false, true) => {
                sqlx::query(kind.sql().2)
                    .bind(doc)
                    .bind(tenant)
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn remove_named(&self, kind: Named, tenant: &str, name: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let r = sqlx::query(kind.sql().3)
            .bind(tenant)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!(
                "{} {name} of tenant {tenant}",
                kind.what()
            )));
        }
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }
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

    /// (select, insert, update, delete); static strings, so no table name is ever interpolated.
    fn sql(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            Named::Connector => (
                "SELECT name FROM connectors WHERE tenant = $1 AND name = $2",
                "INSERT INTO connectors (tenant, name, doc) VALUES ($1, $2, $3)",
                "UPDATE connectors SET doc = $1 WHERE tenant = $2 AND name = $3",
                "DELETE FROM connectors WHERE tenant = $1 AND name = $2",
            ),
            Named::Rule => (
                "SELECT name FROM rules WHERE tenant = $1 AND name = $2",
                "INSERT INTO rules (tenant, name, doc) VALUES ($1, $2, $3)",
                "UPDATE rules SET doc = $1 WHERE tenant = $2 AND name = $3",
                "DELETE FROM rules WHERE tenant = $1 AND name = $2",
            ),
        }
    }
}
