//! The small tokio runtime each cloud backend owns. The blocking trait methods hand a future to
//! it and wait for the result on the caller's thread, without entering the runtime: so they work
//! from any thread, including a worker of another runtime (which they then block, as any
//! blocking call would), and dropping a backend inside an async context does not panic.

use crate::cloud::{Class, CloudError};
use std::future::Future;
use std::time::Duration;
use tokio::runtime::{Builder, Handle};

pub(crate) struct Runtime {
    rt: Option<tokio::runtime::Runtime>,
}

impl Runtime {
    /// A runtime with two worker threads named after the backend.
    pub fn new(name: &str) -> std::io::Result<Runtime> {
        let rt = Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(format!("pgbak-{name}"))
            .enable_all()
            .build()?;
        Ok(Runtime { rt: Some(rt) })
    }

    pub fn handle(&self) -> &Handle {
        self.rt
            .as_ref()
            .expect("runtime present until drop")
            .handle()
    }

    /// Runs `fut` on the runtime and waits for its result on this thread.
    pub fn block_on<F, T>(&self, fut: F) -> Result<T, CloudError>
    where
        F: Future<Output = Result<T, CloudError>> + Send + 'static,
        T: Send + 'static,
    {
        let task = self.handle().spawn(fut);
        match futures_executor::block_on(task) {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(CloudError::new(
                Class::Other,
                "the storage runtime shut down",
            )),
        }
    }

    /// Like [`Runtime::block_on`], but gives up waiting after `limit` (the task is cancelled).
    pub fn block_on_for<F, T>(&self, limit: Duration, fut: F) -> Result<T, CloudError>
    where
        F: Future<Output = Result<T, CloudError>> + Send + 'static,
        T: Send + 'static,
    {
        self.block_on(async move {
            match tokio::time::timeout(limit, fut).await {
                Ok(r) => r,
                Err(_) => Err(CloudError::new(Class::Timeout, "gave up waiting")),
            }
        })
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn works_from_inside_another_runtime_and_drops_there() {
        let ours = Runtime::new("test").unwrap();
        let theirs = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let got = theirs.block_on(async move {
            let v = ours
                .block_on(async { Ok::<_, CloudError>(41 + 1) })
                .unwrap();
            drop(ours);
            v
        });
        assert_eq!(got, 42);
    }

    #[test]
    fn a_deadline_cancels() {
        let rt = Runtime::new("test").unwrap();
        let r = rt.block_on_for(Duration::from_millis(20), async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok::<_, CloudError>(())
        });
        assert_eq!(r.unwrap_err().class, Class::Timeout);
    }
}
