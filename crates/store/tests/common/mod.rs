//! What the store's test files share: a scratch PostgreSQL database of their own.

use portcullis_store::Store;

/// A scratch database on the local PostgreSQL server (`PORTCULLIS_TEST_POSTGRES`, default
/// `postgres://postgres@127.0.0.1:5432/test`), named `portcullis_<tag><pid>`: `(admin, url)`.
/// `None` (the test is skipped, saying so) when the server is unreachable, unless
/// `PORTCULLIS_REQUIRE_POSTGRES` is set (CI), which makes it a failure.
pub async fn scratch_postgres(tag: &str) -> Option<(Store, String)> {
    let base = std::env::var("PORTCULLIS_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let admin = match Store::connect(&base).await {
        Ok(s) => s,
        Err(e) if std::env::var("PORTCULLIS_REQUIRE_POSTGRES").is_ok() => {
            panic!("PostgreSQL required but unreachable at {base}: {e}")
        }
        Err(e) => {
            eprintln!("skipping: PostgreSQL unreachable at {base}: {e}");
            return None;
        }
    };
    let name = format!("portcullis_{tag}{}", std::process::id());
    admin
        .execute_admin(&format!("DROP DATABASE IF EXISTS {name}"))
        .await
        .unwrap();
    admin
        .execute_admin(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let url = format!("{}/{name}", base.rsplit_once('/').unwrap().0);
    Some((admin, url))
}

/// Drops the database [`scratch_postgres`] made.
pub async fn drop_postgres(admin: &Store, url: &str) {
    let name = url.rsplit_once('/').unwrap().1;
    admin
        .execute_admin(&format!("DROP DATABASE {name}"))
        .await
        .unwrap();
}
