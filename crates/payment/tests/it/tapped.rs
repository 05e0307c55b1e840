//! The simulator with a test's hooks around its calls: an outage, a lost answer, a crash after the provider answered,
//! a payment that moves on meanwhile. Each test writes only the hooks that make its provider misbehave.

use async_trait::async_trait;
use phoenix_payment::{Authorization, ListPage, Provider, ProviderError, ProviderPayment, Simulator};

/// Which provider call a hook sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    Authorize,
    Capture,
    Refund,
    Void,
    Fetch,
    Find,
    List,
}

/// What a test does around the simulator's calls. Both hooks pass everything through unless overridden.
#[async_trait]
pub trait Tap: Send + Sync + 'static {
    /// Runs before the call reaches the simulator; an error is answered instead, and the simulator is not called.
    async fn before(&self, _call: Call) -> Result<(), ProviderError> {
        Ok(())
    }

    /// Sees the simulator's answer to a call that answers with a payment (not `find`, not `list`) and may change it.
    fn after(
        &self,
        _call: Call,
        answer: Result<ProviderPayment, ProviderError>,
    ) -> Result<ProviderPayment, ProviderError> {
        answer
    }
}

/// The simulator behind `tap`.
pub struct Tapped<T> {
    pub inner: Simulator,
    pub tap: T,
}

impl<T: Tap> Tapped<T> {
    async fn around(
        &self,
        call: Call,
        answer: impl Future<Output = Result<ProviderPayment, ProviderError>> + Send,
    ) -> Result<ProviderPayment, ProviderError> {
        self.tap.before(call).await?;
        self.tap.after(call, answer.await)
    }
}

#[async_trait]
impl<T: Tap> Provider for Tapped<T> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    async fn authorize(&self, authorization: &Authorization) -> Result<ProviderPayment, ProviderError> {
        self.around(Call::Authorize, self.inner.authorize(authorization)).await
    }
    async fn capture(&self, reference: &str, amount_minor: i64, key: &str) -> Result<ProviderPayment, ProviderError> {
        self.around(Call::Capture, self.inner.capture(reference, amount_minor, key))
            .await
    }
    async fn refund(&self, reference: &str, amount_minor: i64, key: &str) -> Result<ProviderPayment, ProviderError> {
        self.around(Call::Refund, self.inner.refund(reference, amount_minor, key))
            .await
    }
    async fn void(&self, reference: &str, key: &str) -> Result<ProviderPayment, ProviderError> {
        self.around(Call::Void, self.inner.void(reference, key)).await
    }
    async fn fetch(&self, reference: &str) -> Result<ProviderPayment, ProviderError> {
        self.around(Call::Fetch, self.inner.fetch(reference)).await
    }
    async fn find(&self, reference: &str) -> Result<Option<ProviderPayment>, ProviderError> {
        self.tap.before(Call::Find).await?;
        self.inner.find(reference).await
    }
    async fn list(&self, after: Option<&str>) -> Result<ListPage, ProviderError> {
        self.tap.before(Call::List).await?;
        self.inner.list(after).await
    }
}
