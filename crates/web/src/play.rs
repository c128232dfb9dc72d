//! Play, as both front doors (the pages and the JSON API) press it: the
//! rules that need the caller's permissions live here once, the rest in the
//! store.

use crate::AppState;
use crate::error::{AppError, AppResult};
use stagehand_domain::{Permission, PermissionSet};
use stagehand_store::{Promotion, PromotionRequest};

/// Promotes `request.stage` into the next stage. A promotion into a
/// protected stage needs `stage.promote_protected` on top of
/// `stage.promote` (which the route already checked); the last stage has
/// nothing to promote into.
pub(crate) async fn promote(
    state: &AppState,
    permissions: &PermissionSet,
    request: PromotionRequest,
) -> AppResult<Promotion> {
    let pipeline = state.store.pipeline(request.team, request.pipeline).await?;
    match pipeline.stage_and_next(request.stage) {
        None => return Err(AppError::NotFound("stage")),
        Some((_, None)) => {
            return Err(AppError::Conflict(
                "This is the last stage: there is nothing to promote it into.".into(),
            ));
        }
        Some((_, Some(target)))
            if target.protection.is_protected()
                && !permissions.contains(Permission::StagePromoteProtected) =>
        {
            return Err(AppError::Forbidden);
        }
        Some(_) => {}
    }
    Ok(state.store.promote(request).await?)
}
