//! Creating the DynamoDB table outside CloudFormation, for an emulator
//! (moto, LocalStack) behind `dsync serve --backend aws` and for the tests.
//! The definition matches `Table` in template.yaml.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use aws_sdk_dynamodb::Client;
use dsync_core::ports::{StoreError, StoreResult};

fn key(name: &str, kind: KeyType) -> StoreResult<KeySchemaElement> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .map_err(|error| StoreError::Backend(format!("building the table definition: {error}")))
}

fn string_attribute(name: &str) -> StoreResult<AttributeDefinition> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|error| StoreError::Backend(format!("building the table definition: {error}")))
}

fn index(
    name: &str,
    hash: &str,
    range: Option<&str>,
    projection: ProjectionType,
) -> StoreResult<GlobalSecondaryIndex> {
    let mut keys = vec![key(hash, KeyType::Hash)?];
    if let Some(range) = range {
        keys.push(key(range, KeyType::Range)?);
    }
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .set_key_schema(Some(keys))
        .projection(Projection::builder().projection_type(projection).build())
        .build()
        .map_err(|error| StoreError::Backend(format!("building the table definition: {error}")))
}

/// Creates the table unless it exists.
pub async fn ensure_table(client: &Client, table: &str) -> StoreResult<()> {
    if client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .is_ok()
    {
        return Ok(());
    }
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(vec![
            string_attribute("pk")?,
            string_attribute("sk")?,
            string_attribute("gid")?,
            string_attribute("uk")?,
            string_attribute("lp")?,
        ]))
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .global_secondary_indexes(index("byid", "gid", None, ProjectionType::All)?)
        .global_secondary_indexes(index("byuser", "uk", Some("sk"), ProjectionType::KeysOnly)?)
        .global_secondary_indexes(index("list", "lp", Some("gid"), ProjectionType::All)?)
        .send()
        .await
        .map_err(|error| {
            StoreError::Backend(format!(
                "creating table {table} failed: {}",
                crate::s3::describe(&error)
            ))
        })?;
    Ok(())
}
