//! The deployment's event-id digest key (`layout::event_digest_key`): made by the first replica
//! that needs it and kept in Redis (`SET NX`, like the token secret), so every replica digests
//! an id the same way; read once per process.

use std::sync::OnceLock;

use super::{Shared, layout, read};
use crate::store::StoreError;
use crate::store::event_ids::{DIGEST_KEY_LEN, Digester};

/// The digester once read (`Shared::digest_key`).
#[derive(Default)]
pub struct DigestKey(OnceLock<Digester>);

/// The deployment's digester: read from Redis on first use, made there if absent.
pub async fn digester(shared: &Shared) -> Result<Digester, StoreError> {
    if let Some(digester) = shared.digest_key.0.get() {
        return Ok(*digester);
    }
    let key = layout::secret_key(layout::EVENT_DIGEST_SECRET);
    let held = read::secret(shared, &key, Digester::random_key().to_vec()).await?;
    let bytes: [u8; DIGEST_KEY_LEN] = held.as_slice().try_into().map_err(|_| {
        StoreError::Corrupt(format!(
            "{key} holds {} bytes, not a {DIGEST_KEY_LEN}-byte digest key",
            held.len()
        ))
    })?;
    let digester = Digester::new(bytes);
    // Another task may have set it meanwhile: from the same Redis key, so the same value.
    let _ = shared.digest_key.0.set(digester);
    Ok(digester)
}
