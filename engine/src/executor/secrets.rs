//! The engine's secrets: configured ones, sealed stored ones, and the set steps use.

use std::sync::Arc;

use super::{Engine, EngineError};
use crate::secrets::SecretSet;

impl Engine {
    /// The value of a secret, configured (`FLOWSCOPE_SECRET_<NAME>`) or stored.
    pub fn secret(&self, name: &str) -> Option<String> {
        self.secret_set().map.get(name).cloned()
    }

    /// Rereads the stored secrets and merges them under the configured ones (configuration
    /// wins). A secret that does not open is left out and reported; the others stay usable.
    pub async fn reload_secrets(&self) -> Result<(), EngineError> {
        let sealed = self.inner.store.sealed_secrets().await?;
        let mut map = self.inner.config_secrets.clone();
        let mut problems = Vec::new();
        if !sealed.is_empty() {
            match &self.inner.vault {
                None => problems.push(format!(
                    "{} stored secrets, but no secret key is configured",
                    sealed.len()
                )),
                Some(vault) => {
                    for s in &sealed {
                        if map.contains_key(&s.name) {
                            continue;
                        }
                        match vault.open(&s.name, &s.nonce, &s.ciphertext) {
                            Ok(value) => {
                                map.insert(s.name.clone(), value);
                            }
                            Err(e) => problems.push(e.to_string()),
                        }
                    }
                }
            }
        }
        *self
            .inner
            .secrets
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Arc::new(SecretSet::new(map));
        if problems.is_empty() {
            Ok(())
        } else {
            Err(EngineError::Secrets(problems.join("; ")))
        }
    }

    /// Seals and stores a secret, then uses it from the next step on.
    pub async fn put_secret(
        &self,
        name: &str,
        value: &str,
        by: Option<&str>,
    ) -> Result<(), EngineError> {
        if self.inner.config_secrets.contains_key(name) {
            return Err(EngineError::Secrets(format!(
                "secret \"{name}\" is set by the server's configuration (FLOWSCOPE_SECRET_{name}); change it there"
            )));
        }
        let vault = self.inner.vault.as_ref().ok_or_else(|| {
            EngineError::Secrets("no secret key is configured: secrets cannot be stored".into())
        })?;
        let (nonce, sealed) = vault
            .seal(name, value)
            .map_err(|e| EngineError::Secrets(e.to_string()))?;
        self.inner
            .store
            .put_secret(name, &nonce, &sealed, crate::store::now_ms(), by)
            .await?;
        self.reload_secrets().await
    }

    /// Deletes a stored secret; `false` when there was none.
    pub async fn delete_secret(&self, name: &str) -> Result<bool, EngineError> {
        let deleted = self.inner.store.delete_secret(name).await?;
        let _ = self.reload_secrets().await;
        Ok(deleted)
    }

    /// Every secret's name and history, never a value.
    pub async fn secret_infos(&self) -> Result<Vec<crate::access::SecretInfo>, EngineError> {
        let mut infos: Vec<crate::access::SecretInfo> = self
            .inner
            .config_secrets
            .keys()
            .map(|name| crate::access::SecretInfo {
                name: name.clone(),
                updated_at: 0,
                updated_by: None,
                from_config: true,
            })
            .collect();
        for s in self.inner.store.sealed_secrets().await? {
            if !self.inner.config_secrets.contains_key(&s.name) {
                infos.push(crate::access::SecretInfo {
                    name: s.name,
                    updated_at: s.updated_at,
                    updated_by: s.updated_by,
                    from_config: false,
                });
            }
        }
        infos.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(infos)
    }

    /// The secrets `workflow` reads that are set nowhere (neither `FLOWSCOPE_SECRET_<NAME>`
    /// nor Settings → Secrets): steps reading them fail until they are.
    pub fn missing_secrets(&self, workflow: &crate::model::Workflow) -> Vec<String> {
        let used = workflow.secrets_used();
        self.secret_set()
            .missing(&used)
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    pub(super) fn secret_set(&self) -> Arc<SecretSet> {
        self.inner
            .secrets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
