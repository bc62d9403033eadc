//! Lambda `api`: the WorkOS-compatible HTTP API behind an HTTP API `$default` stage.
//! The router is `dsync_aws::handlers::api::router`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .without_time()
        .init();
    let deployment = dsync_aws::Deployment::from_env().await?;
    lambda_http::run(dsync_aws::handlers::api::router(&deployment)).await
}
