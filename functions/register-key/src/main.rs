//! Lambda `register-key`: directories, SSH keys, offboarding, API keys.
//! The handler is `dsync_aws::handlers::register_key::handle`.

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
    let deployment = &deployment;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        Ok::<Value, Error>(
            dsync_aws::handlers::register_key::handle(deployment, event.payload).await,
        )
    }))
    .await
}
