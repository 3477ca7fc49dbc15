//! For providers' tests (feature `testing`): an operation performed the way the kit performs
//! it, from the JSON a caller would send.

use domain::{FailureClassification, RunUsage};
use resilience::CallError;
use serde_json::Value;

use crate::operation::{Operation, Serves, Step, parse_input};
use crate::provider::{ProviderCall, fail};

/// What a test reads of a finished operation: the output as the run keeps it (also its
/// summary unless the provider gave one), the usage and the vendor's message id.
#[derive(Debug, Clone, PartialEq)]
pub struct Ran {
    pub output: Value,
    pub summary: Value,
    pub usage: RunUsage,
    pub vendor_message_id: Option<String>,
}

/// Performs `O` through `provider` with `input` as a run would: the input parsed as the
/// operation's (a bad one fails as `validation`, as at execution), a finished answer
/// expected (a provider that answers "wait" makes this panic: use [`step`] for those).
pub async fn execute<O, P>(
    provider: &P,
    call: &ProviderCall<'_>,
    input: &Value,
) -> Result<Ran, CallError>
where
    O: Operation,
    P: Serves<O>,
{
    match step::<O, P>(provider, call, input).await? {
        Step::Done(done) => {
            let output = serde_json::to_value(&done.output).expect("the output serialises");
            Ok(Ran {
                summary: done.summary.unwrap_or_else(|| output.clone()),
                output,
                usage: done.usage,
                vendor_message_id: done.vendor_message_id,
            })
        }
        Step::Wait(wait) => panic!("{} answered wait: {wait:?}", O::NAME),
    }
}

/// One call of `O` through `provider`, whatever it answers.
pub async fn step<O, P>(
    provider: &P,
    call: &ProviderCall<'_>,
    input: &Value,
) -> Result<Step<O::Output>, CallError>
where
    O: Operation,
    P: Serves<O>,
{
    let input = parse_input::<O>(input)
        .map_err(|e| fail(FailureClassification::Validation, e.to_string()))?;
    Serves::<O>::execute(provider, call, &input).await
}
