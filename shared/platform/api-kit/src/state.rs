//! The state an app's routes share.

use std::sync::Arc;

use app_context::AppContext;
use axum::extract::FromRef;

/// What an app's handlers share: its context and its typed settings (read and checked once,
/// when the app is built). Handlers take `State<AppContext>` or `State<Arc<S>>` as they need.
pub struct AppState<S> {
    pub ctx: AppContext,
    pub settings: Arc<S>,
}

impl<S> Clone for AppState<S> {
    fn clone(&self) -> Self {
        AppState {
            ctx: self.ctx.clone(),
            settings: self.settings.clone(),
        }
    }
}

impl<S> FromRef<AppState<S>> for AppContext {
    fn from_ref(state: &AppState<S>) -> AppContext {
        state.ctx.clone()
    }
}

impl<S> FromRef<AppState<S>> for Arc<S> {
    fn from_ref(state: &AppState<S>) -> Arc<S> {
        state.settings.clone()
    }
}
