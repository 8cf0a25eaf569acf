//! Fresh registries on both backends (the crate's `testing` helpers) and a runner for both.

pub use quantpipe_registry::testing::*;

/// Runs `scenario` on SQLite and then on PostgreSQL, each with a fresh registry.
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident, $scenario:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let t = $crate::common::sqlite().await;
                super::$scenario(&t).await;
                t.cleanup().await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let t = $crate::common::postgres().await;
                super::$scenario(&t).await;
                t.cleanup().await;
            }
        }
    };
}
