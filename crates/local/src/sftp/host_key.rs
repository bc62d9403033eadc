//! The server's persistent host key: generated once, then reused so clients
//! that stored it in `known_hosts` keep trusting the server.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;
use rand::RngCore;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::ssh_key::LineEnding;
use russh::keys::PrivateKey;

/// Loads the host key at `path`, or generates an Ed25519 key there (mode 0600) when the file does not exist.
pub fn load_or_generate(path: &Path) -> anyhow::Result<PrivateKey> {
    match std::fs::read_to_string(path) {
        Ok(pem) => {
            let key = PrivateKey::from_openssh(pem.as_bytes()).with_context(|| {
                format!(
                    "invalid SFTP host key file {}: expected an unencrypted OpenSSH private key; \
                     delete the file to generate a new key",
                    path.display()
                )
            })?;
            restrict_permissions(path)?;
            Ok(key)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => generate(path),
        Err(error) => Err(error)
            .with_context(|| format!("cannot read the SFTP host key file {}", path.display())),
    }
}

fn generate(path: &Path) -> anyhow::Result<PrivateKey> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| {
            format!(
                "cannot create the folder for the SFTP host key {}",
                parent.display()
            )
        })?;
    }

    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    let key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    let pem = key
        .to_openssh(LineEnding::LF)
        .context("cannot encode the generated SFTP host key")?;

    // Write beside the final name and rename, so a crash never leaves a truncated key behind.
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .with_context(|| {
            format!(
                "cannot create the SFTP host key file {}",
                temporary.display()
            )
        })?;
    file.write_all(pem.as_bytes())
        .and_then(|_| file.sync_all())
        .with_context(|| {
            format!(
                "cannot write the SFTP host key file {}",
                temporary.display()
            )
        })?;
    std::fs::rename(&temporary, path).with_context(|| {
        format!(
            "cannot move the SFTP host key into place at {}",
            path.display()
        )
    })?;

    Ok(key)
}

/// Sets mode 0600 on an existing key file whose group or others could read it.
fn restrict_permissions(path: &Path) -> anyhow::Result<()> {
    let metadata = std::fs::metadata(path).with_context(|| {
        format!(
            "cannot read the permissions of the SFTP host key file {}",
            path.display()
        )
    })?;
    if metadata.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).with_context(
            || {
                format!(
                    "cannot set mode 0600 on the SFTP host key file {}",
                    path.display()
                )
            },
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::HashAlg;

    #[test]
    fn host_key_generated_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/host_ed25519");

        load_or_generate(&path).unwrap();

        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn host_key_reused_on_second_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host_ed25519");

        let first = load_or_generate(&path).unwrap();
        let second = load_or_generate(&path).unwrap();

        assert_eq!(
            first.public_key().fingerprint(HashAlg::Sha256).to_string(),
            second.public_key().fingerprint(HashAlg::Sha256).to_string()
        );
    }

    #[test]
    fn host_key_invalid_file_names_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host_ed25519");
        std::fs::write(&path, "not a key").unwrap();

        let error = load_or_generate(&path).unwrap_err().to_string();

        assert!(error.contains("host_ed25519"), "{error}");
    }
}
