//! Play, as both front doors (the pages and the JSON API) press it: the
//! rules that need the caller's permissions live here once, the rest in the
//! store.

use crate::AppState;
use crate::error::{AppError, AppResult};
use stagehand_store::{Played, PromotionRequest};

/// Promotes `request.stage` into the next stage; `stage.promote` (which
/// the route checked) is all it takes. Into a protected instance, this
/// requests the promotion: it waits for approvals from people other than
/// the requester. The last stage has nothing to promote into.
pub(crate) async fn promote(state: &AppState, request: PromotionRequest) -> AppResult<Played> {
    let pipeline = state.store.pipeline(request.team, request.pipeline).await?;
    match pipeline.stage_and_next(request.stage) {
        None => return Err(AppError::NotFound("stage")),
        Some((_, None)) => {
            return Err(AppError::Conflict(
                "This is the last stage: there is nothing to promote it into.".into(),
            ));
        }
        Some(_) => {}
    }
    Ok(state.store.play(request).await?)
}
