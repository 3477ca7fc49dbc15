//! Typed operations: what an app offers ([`Operation`]: a name, an input type and an output
//! type) and which provider performs it ([`Serves`]).
//!
//! The input is parsed once where the run is requested (`POST /api/integrations/runs`), so a
//! bad input is a 400 naming the field ([`InputError`]); the provider receives the typed value
//! and answers with a typed output, which the kit keeps on the run. A provider may also answer
//! "not finished yet" ([`Step::Wait`]) for work the vendor completes later: the kit keeps the
//! run `waiting` and calls [`Serves::resume`] when it is time to look again.
//!
//! Inside the kit the types are erased behind [`Handler`] (one per provider and operation), so
//! the executor, the routes and the storage are written once for every app.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use domain::{FailureClassification, RunUsage};
use resilience::CallError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::provider::{Provider, ProviderCall, fail};

/// How long a run of an operation may stay `waiting` unless the operation says otherwise.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(6 * 3600);

/// An operation an app offers. Implemented by a unit type per operation:
///
/// ```ignore
/// pub struct Send;
/// impl Operation for Send {
///     const NAME: &'static str = "send";
///     type Input = SendInput;   // serde, `deny_unknown_fields`
///     type Output = SendOutput; // serde; vendor ids belong here
/// }
/// ```
pub trait Operation: Send + Sync + 'static {
    /// The name callers give in `POST /api/integrations/runs` (`operation`).
    const NAME: &'static str;
    /// How long a run may wait for the vendor to finish ([`Step::Wait`]) before it fails
    /// with `timeout`.
    const MAX_WAIT: Duration = DEFAULT_MAX_WAIT;
    /// The largest input a run of it takes, as JSON (default 1 MiB; an operation that
    /// carries files says more).
    const MAX_INPUT_BYTES: usize = DEFAULT_MAX_INPUT_BYTES;
    /// The input, read from the request's `input`. Rules that one field's type cannot say
    /// (one of two fields required, limits across lists) go in [`Operation::check`].
    type Input: DeserializeOwned + Send + Sync + 'static;
    /// What a finished run keeps (`output` of the run): ids, statuses, counts.
    type Output: Serialize + Send + Sync + 'static;

    /// Checks across fields, after the input parsed. The error names the field.
    fn check(_input: &Self::Input) -> Result<(), InputError> {
        Ok(())
    }

    /// Reads the input from JSON: serde, the path of a refused field kept, then
    /// [`Operation::check`]. An app with a reader of its own (one that already names the
    /// fields it refuses) says so here.
    fn parse(input: &Value) -> Result<Self::Input, InputError> {
        let parsed: Self::Input = parse_typed(input)?;
        Self::check(&parsed)?;
        Ok(parsed)
    }
}

/// Why an input was refused: the JSON path of the offending field (`to`, `attachments[2].name`;
/// empty for the input as a whole) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    pub path: String,
    pub message: String,
}

impl InputError {
    pub fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        InputError {
            path: path.into(),
            message: message.into(),
        }
    }

    /// The path as an RFC 6901 JSON pointer below `input` (`/input/to`).
    pub fn pointer(&self) -> String {
        self.pointer_below("input")
    }

    /// The path as an RFC 6901 JSON pointer below the request's member `root`.
    pub fn pointer_below(&self, root: &str) -> String {
        let mut pointer = format!("/{root}");
        for part in self.path.split(['.', '[']).filter(|p| !p.is_empty()) {
            pointer.push('/');
            let part = part.trim_end_matches(']');
            pointer.push_str(&part.replace('~', "~0").replace('/', "~1"));
        }
        pointer
    }
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            write!(f, "input: {}", self.message)
        } else {
            write!(f, "input.{}: {}", self.path, self.message)
        }
    }
}

/// Reads `value` as a `T`, keeping the path of a refused field.
pub(crate) fn parse_typed<T: DeserializeOwned>(value: &Value) -> Result<T, InputError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        InputError::at(path, strip_serde_position(&e.into_inner().to_string()))
    })
}

/// Parses `input` as `O`'s input and checks it ([`Operation::parse`]): how the kit reads an
/// operation's input, when the run is requested and when it is executed.
pub fn parse_input<O: Operation>(input: &Value) -> Result<O::Input, InputError> {
    O::parse(input)
}

/// serde_json adds " at line 1 column 5" to its messages; a value has no lines.
fn strip_serde_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// A finished operation: its typed output and what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Done<T> {
    pub output: T,
    pub usage: RunUsage,
    /// The vendor's id of what was created (a message sid): delivery receipts find the run by
    /// it.
    pub vendor_message_id: Option<String>,
    /// The run's short summary (ids, statuses; never payloads or secrets), when the output
    /// itself is not one.
    pub summary: Option<Value>,
    /// Documents of the app's own created in the batch that records the run's success (the
    /// payment app's record of a payment): they exist exactly when the run succeeded. Ids
    /// are the app's (never the kit's prefixes).
    pub creates: Vec<(String, Value)>,
    /// A look at the vendor's record ([`Done::vendor_message_id`]) by the app's
    /// [`Reconciler`](crate::records::Reconciler) this long after the run's success,
    /// scheduled in the same batch.
    pub reconcile_after: Option<Duration>,
}

impl<T> Done<T> {
    pub fn new(output: T) -> Self {
        Done {
            output,
            usage: RunUsage::default(),
            vendor_message_id: None,
            summary: None,
            creates: Vec::new(),
            reconcile_after: None,
        }
    }

    /// Creates the app's document `id` with the run's success (see [`Done::creates`]).
    pub fn create(mut self, id: impl Into<String>, body: Value) -> Self {
        self.creates.push((id.into(), body));
        self
    }

    /// Schedules a look at the vendor's record `after` the run's success (see
    /// [`Done::reconcile_after`]).
    pub fn reconcile_after(mut self, after: Duration) -> Self {
        self.reconcile_after = Some(after);
        self
    }

    pub fn usage(mut self, usage: RunUsage) -> Self {
        self.usage = usage;
        self
    }

    pub fn vendor_message_id(mut self, id: impl Into<String>) -> Self {
        self.vendor_message_id = Some(id.into());
        self
    }
}

/// The vendor accepted the work and finishes it later: look again after `after`. `state` is
/// what the provider needs to look (the vendor's id of the job); the kit keeps it on the run
/// and hands it back to [`Serves::resume`].
#[derive(Debug, Clone, PartialEq)]
pub struct Wait {
    pub after: Duration,
    pub state: Value,
    /// What the caller may already know (the vendor's run id and URL): shown as the waiting
    /// run's `output` until the final one replaces it.
    pub progress: Option<Value>,
    pub usage: RunUsage,
    /// The vendor's name for the work (`workflow_run:123`): a vendor webhook that reports it
    /// finished ([`WebhookEffect`](crate::WebhookEffect)) ends the wait at once by it.
    pub correlation: Option<String>,
}

impl Wait {
    pub fn after(after: Duration, state: Value) -> Self {
        Wait {
            after,
            state,
            progress: None,
            usage: RunUsage::default(),
            correlation: None,
        }
    }

    pub fn progress(mut self, progress: Value) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Names the vendor's work, so its completion webhook finds the run.
    pub fn correlate(mut self, correlation: impl Into<String>) -> Self {
        self.correlation = Some(correlation.into());
        self
    }
}

/// What one call of an operation came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Step<T> {
    Done(Done<T>),
    Wait(Wait),
}

impl<T> From<Done<T>> for Step<T> {
    fn from(done: Done<T>) -> Self {
        Step::Done(done)
    }
}

impl<T> From<Wait> for Step<T> {
    fn from(wait: Wait) -> Self {
        Step::Wait(wait)
    }
}

/// A provider performs operation `O`.
#[async_trait]
pub trait Serves<O: Operation>: Provider {
    /// Performs the operation once, through `call`'s pipeline.
    async fn execute(
        &self,
        call: &ProviderCall<'_>,
        input: &O::Input,
    ) -> Result<Step<O::Output>, CallError>;

    /// Looks again at work an earlier call left waiting ([`Step::Wait`] with `state`).
    async fn resume(
        &self,
        _call: &ProviderCall<'_>,
        _input: &O::Input,
        _state: &Value,
    ) -> Result<Step<O::Output>, CallError> {
        Err(fail(
            FailureClassification::Validation,
            format!("{} cannot look again at a waiting {}", self.key(), O::NAME),
        ))
    }
}

/// A step with its output as JSON: what the kit stores.
pub(crate) type ErasedStep = Step<Value>;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One provider's code for one operation, with the types erased.
pub(crate) trait Handler: Send + Sync {
    fn execute<'a>(
        &'a self,
        call: &'a ProviderCall<'a>,
        input: &'a Value,
    ) -> BoxFuture<'a, Result<ErasedStep, CallError>>;

    fn resume<'a>(
        &'a self,
        call: &'a ProviderCall<'a>,
        input: &'a Value,
        state: &'a Value,
    ) -> BoxFuture<'a, Result<ErasedStep, CallError>>;
}

struct Bound<P, O> {
    provider: Arc<P>,
    operation: PhantomData<fn() -> O>,
}

/// The stored input no longer reads as the operation's input (an older version wrote it).
fn unreadable(e: InputError) -> CallError {
    fail(
        FailureClassification::Validation,
        format!("the run's input no longer fits the operation: {e}"),
    )
}

fn erase<T: Serialize>(step: Step<T>) -> Result<ErasedStep, CallError> {
    Ok(match step {
        Step::Wait(w) => Step::Wait(w),
        Step::Done(d) => Step::Done(d.erase()?),
    })
}

impl<T: Serialize> Done<T> {
    /// The output as the kit keeps it (JSON).
    pub(crate) fn erase(self) -> Result<Done<Value>, CallError> {
        Ok(Done {
            output: serde_json::to_value(&self.output).map_err(|e| {
                fail(
                    FailureClassification::VendorError,
                    format!("the operation's output did not serialise: {e}"),
                )
            })?,
            usage: self.usage,
            vendor_message_id: self.vendor_message_id,
            summary: self.summary,
            creates: self.creates,
            reconcile_after: self.reconcile_after,
        })
    }
}

impl<P, O> Handler for Bound<P, O>
where
    P: Serves<O> + 'static,
    O: Operation,
{
    fn execute<'a>(
        &'a self,
        call: &'a ProviderCall<'a>,
        input: &'a Value,
    ) -> BoxFuture<'a, Result<ErasedStep, CallError>> {
        Box::pin(async move {
            let input = parse_input::<O>(input).map_err(unreadable)?;
            erase(Serves::<O>::execute(&*self.provider, call, &input).await?)
        })
    }

    fn resume<'a>(
        &'a self,
        call: &'a ProviderCall<'a>,
        input: &'a Value,
        state: &'a Value,
    ) -> BoxFuture<'a, Result<ErasedStep, CallError>> {
        Box::pin(async move {
            let input = parse_input::<O>(input).map_err(unreadable)?;
            erase(Serves::<O>::resume(&*self.provider, call, &input, state).await?)
        })
    }
}

/// An operation as the kit lists it.
#[derive(Clone)]
pub(crate) struct OperationEntry {
    pub(crate) name: &'static str,
    pub(crate) check: fn(&Value) -> Result<(), InputError>,
    pub(crate) max_wait: Duration,
    pub(crate) max_input: usize,
}

/// [`Operation::MAX_INPUT_BYTES`] unless the operation says otherwise.
pub const DEFAULT_MAX_INPUT_BYTES: usize = 1024 * 1024;

impl std::fmt::Debug for OperationEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operation")
            .field("name", &self.name)
            .finish()
    }
}

fn check_input<O: Operation>(input: &Value) -> Result<(), InputError> {
    parse_input::<O>(input).map(|_| ())
}

/// What a provider declares it serves ([`Provider::serves`]): its operations and its
/// connections' typed config.
pub struct Served<P> {
    provider: Arc<P>,
    pub(crate) operations: Vec<(OperationEntry, Arc<dyn Handler>)>,
    pub(crate) config: Option<ConfigCheck>,
}

/// Reads a connection's config (without the kit's own members) as the provider's type.
pub(crate) type ConfigCheck = fn(&Value) -> Result<(), InputError>;

/// A provider's connection config: what `config` of a connection holds for it (the kit's own
/// members, `priority`, taken out). Parsed and checked when a connection is created (a 400
/// naming the field), and read typed by the provider at each use
/// ([`ProviderCall::config_as`](crate::ProviderCall::config_as), [`config_of`]).
pub trait ProviderConfig: DeserializeOwned + Send + Sync + 'static {
    /// Rules across or within fields, after the config parsed (formats serde does not
    /// check). The error names the field.
    fn check(&self) -> Result<(), InputError> {
        Ok(())
    }
}

/// A connection's config as the provider's type, parsed and checked: for the provider's
/// hooks that get the config itself (receipts, webhooks).
pub fn config_of<C: ProviderConfig>(config: &domain::ConnectionConfig) -> Result<C, InputError> {
    let parsed: C = parse_typed(&provider_config(config))?;
    parsed.check()?;
    Ok(parsed)
}

fn check_config<C: ProviderConfig>(config: &Value) -> Result<(), InputError> {
    parse_typed::<C>(config)?.check()
}

/// The connection config members the kit reads itself, not the provider.
pub(crate) const KIT_CONFIG: &[&str] = &["priority", crate::connections::FALLBACK];

/// A connection's config as its provider reads it: without [`KIT_CONFIG`].
pub(crate) fn provider_config(config: &domain::ConnectionConfig) -> Value {
    Value::Object(
        config
            .iter()
            .filter(|(k, _)| !KIT_CONFIG.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}

impl<P: Provider + 'static> Served<P> {
    pub(crate) fn new(provider: Arc<P>) -> Self {
        Served {
            provider,
            operations: Vec::new(),
            config: None,
        }
    }

    /// The provider's connections have config `C` (serde; `#[serde(deny_unknown_fields)]`
    /// makes a misspelt setting a 400 naming it): checked when a connection is created, and
    /// read by [`ProviderCall::config_as`].
    pub fn config<C: ProviderConfig>(&mut self) -> &mut Self {
        self.config = Some(check_config::<C>);
        self
    }

    /// The provider performs `O`.
    pub fn operation<O: Operation>(&mut self) -> &mut Self
    where
        P: Serves<O>,
    {
        self.operations.push((
            OperationEntry {
                name: O::NAME,
                check: check_input::<O>,
                max_wait: O::MAX_WAIT,
                max_input: O::MAX_INPUT_BYTES,
            },
            Arc::new(Bound::<P, O> {
                provider: self.provider.clone(),
                operation: PhantomData,
            }),
        ));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct In {
        #[allow(dead_code)]
        to: String,
        #[serde(default)]
        items: Vec<Item>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Item {
        #[allow(dead_code)]
        name: String,
    }

    struct Op;
    impl Operation for Op {
        const NAME: &'static str = "op";
        type Input = In;
        type Output = ();
        fn check(input: &In) -> Result<(), InputError> {
            if input.items.len() > 2 {
                return Err(InputError::at("items", "at most 2 items"));
            }
            Ok(())
        }
    }

    #[test]
    fn input_errors_name_the_field() {
        assert!(parse_input::<Op>(&json!({"to": "x"})).is_ok());
        let e = parse_input::<Op>(&json!({})).unwrap_err();
        assert_eq!(e.path, "");
        assert!(e.message.contains("missing field `to`"), "{e}");
        let e = parse_input::<Op>(&json!({"to": 5})).unwrap_err();
        assert_eq!(e.path, "to");
        assert!(e.message.contains("expected a string"), "{e}");
        assert!(!e.message.contains("line"), "{e}");
        let e = parse_input::<Op>(&json!({"to": "x", "items": [{"name": "a"}, {"nam": 1}]}))
            .unwrap_err();
        // An unknown field is named itself.
        assert_eq!(e.path, "items[1].nam");
        assert_eq!(e.pointer(), "/input/items/1/nam");
        assert!(e.message.contains("unknown field `nam`"), "{e}");
        let e = parse_input::<Op>(
            &json!({"to": "x", "items": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}),
        )
        .unwrap_err();
        assert_eq!(e, InputError::at("items", "at most 2 items"));
        assert_eq!(e.to_string(), "input.items: at most 2 items");
    }
}
