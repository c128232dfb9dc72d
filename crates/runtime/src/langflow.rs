//! Langflow: to be written (the client, and the pure transforms between its JSON
//! and Stagehand's flows).

use crate::http::RuntimeHttp;
use crate::{
    Deployed, Deployment, Pulled, Revision, Runtime, RuntimeAuth, RuntimeError, RuntimeKind,
    RuntimeResult,
};
use async_trait::async_trait;

#[derive(Debug)]
pub struct Langflow {
    http: RuntimeHttp,
    auth: RuntimeAuth,
}

impl Langflow {
    pub fn new(http: RuntimeHttp, auth: RuntimeAuth) -> Self {
        Self { http, auth }
    }
}

#[async_trait]
impl Runtime for Langflow {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Langflow
    }
    async fn revision(&self) -> RuntimeResult<Revision> {
        let _ = (&self.http, &self.auth);
        Err(RuntimeError::Invalid("not written yet".into()))
    }
    async fn pull(&self) -> RuntimeResult<Pulled> {
        Err(RuntimeError::Invalid("not written yet".into()))
    }
    async fn deploy(&self, _deployment: &Deployment) -> RuntimeResult<Deployed> {
        Err(RuntimeError::Invalid("not written yet".into()))
    }
}
