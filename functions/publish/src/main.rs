//! Lambda `publish`: the event outbox to EventBridge, and webhook deliveries.
//! The handler is `dsync_aws::handlers::publish::handle`.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .without_time()
        .init();
    let deployment = dsync_aws::Deployment::from_env().await?;
    let publisher = deployment.publisher();
    let publisher = &publisher;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        Ok::<Value, Error>(dsync_aws::handlers::publish::handle(publisher, event.payload).await)
    }))
    .await
}
