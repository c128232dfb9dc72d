//! The path parameters of team routes. A malformed id is answered like an
//! id that does not exist: 404, never 400, so ids reveal nothing.

use crate::error::{AppError, AppResult};
use serde::Deserialize;
use stagehand_domain::{EnvKey, FlowName, InstanceId, PipelineId, PromotionId, StageId, TeamId};
use std::str::FromStr;

pub(crate) fn parse_id<T: FromStr>(raw: &str, what: &'static str) -> AppResult<T> {
    raw.parse().map_err(|_| AppError::NotFound(what))
}

#[derive(Deserialize)]
pub(crate) struct PipelinePath {
    team: String,
    pipeline: String,
}

impl PipelinePath {
    pub fn ids(&self) -> AppResult<(TeamId, PipelineId)> {
        Ok((
            parse_id(&self.team, "team")?,
            parse_id(&self.pipeline, "pipeline")?,
        ))
    }
}

#[derive(Deserialize)]
pub(crate) struct StagePath {
    team: String,
    pipeline: String,
    stage: String,
}

impl StagePath {
    pub fn ids(&self) -> AppResult<(TeamId, PipelineId, StageId)> {
        Ok((
            parse_id(&self.team, "team")?,
            parse_id(&self.pipeline, "pipeline")?,
            parse_id(&self.stage, "stage")?,
        ))
    }
}

#[derive(Deserialize)]
pub(crate) struct PromotionPath {
    team: String,
    promotion: String,
}

impl PromotionPath {
    pub fn ids(&self) -> AppResult<(TeamId, PromotionId)> {
        Ok((
            parse_id(&self.team, "team")?,
            parse_id(&self.promotion, "promotion")?,
        ))
    }
}

#[derive(Deserialize)]
pub(crate) struct InstancePath {
    team: String,
    instance: String,
}

impl InstancePath {
    pub fn ids(&self) -> AppResult<(TeamId, InstanceId)> {
        Ok((
            parse_id(&self.team, "team")?,
            parse_id(&self.instance, "instance")?,
        ))
    }
}

#[derive(Deserialize)]
pub(crate) struct FlowPath {
    team: String,
    instance: String,
    flow: String,
}

impl FlowPath {
    pub fn ids(&self) -> AppResult<(TeamId, InstanceId, FlowName)> {
        Ok((
            parse_id(&self.team, "team")?,
            parse_id(&self.instance, "instance")?,
            FlowName::parse(&self.flow).map_err(|_| AppError::NotFound("flow"))?,
        ))
    }
}

#[derive(Deserialize)]
pub(crate) struct KeyPath {
    team: String,
    instance: String,
    key: String,
}

impl KeyPath {
    pub fn ids(&self) -> AppResult<(TeamId, InstanceId, EnvKey)> {
        Ok((
            parse_id(&self.team, "team")?,
            parse_id(&self.instance, "instance")?,
            EnvKey::parse(&self.key).map_err(|_| AppError::NotFound("env var"))?,
        ))
    }
}
