//! Play, as both front doors (the pages and the JSON API) press it: the
//! rules that need the caller's permissions live here once, the rest in the
//! store.

use crate::AppState;
use crate::error::AppResult;
use stagehand_store::{Played, PromotionRequest};

/// Promotes `request.stage` into the next stage (or, for a restore, sets
/// its instance back to a snapshot); `stage.promote` (which
/// the route checked) is all it takes. Into a protected instance, this
/// requests the promotion: it waits for approvals from people other than
/// the requester. The last stage has nothing to promote into.
pub(crate) async fn promote(state: &AppState, request: PromotionRequest) -> AppResult<Played> {
    crate::deploy::play(state, request, None).await
}
