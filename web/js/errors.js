/**
 * Server errors in words a person understands: each entry of `node_errors` (ComfyUI's /prompt errors) becomes
 * `{input, text}` for the node that owns it; prompt-level and execution errors become one line.
 */

const quote = (name) => `“${name}”`;

function shortList(values, limit = 6) {
  const shown = values.filter((v) => v !== "...").slice(0, limit).map(String);
  const more = values.length > shown.length ? ", …" : "";
  return shown.length ? shown.join(", ") + more : "nothing";
}

/** One `node_errors[id].errors[]` entry → `{input, text}`. */
export function describeInputError(error) {
  const info = error.extra_info || {};
  const input = info.input_name || null;
  const name = input ? quote(input) : "This node";
  const received = info.received_value;
  const config = info.input_config || {};
  switch (error.type) {
    case "required_input_missing":
      return { input, text: `${name} is not connected: link an output into it.` };
    case "bad_linked_input":
      return { input, text: `${name} is linked to something that does not exist (${error.details || error.message}).` };
    case "return_type_mismatch":
      return { input, text: `${name} takes ${info.input_type ?? "another type"} but is fed ${info.received_type ?? "a different type"}.` };
    case "invalid_input_type":
      return { input, text: `${name} got a value of the wrong kind (${error.details || error.message}).` };
    case "value_smaller_than_min":
      return { input, text: `${name} is ${received}, below its minimum of ${config.min}.` };
    case "value_bigger_than_max":
      return { input, text: `${name} is ${received}, above its maximum of ${config.max}.` };
    case "value_not_in_list":
      return { input, text: `${name}: “${received}” is not available on the server. Choose one of: ${shortList(config.choices || [])}.` };
    case "value_too_large":
      return { input, text: `${name} is too large (${error.message}).` };
    case "dependency_cycle":
      return { input, text: "This node depends on its own output (a cycle): remove one of the links." };
    case "missing_node_type":
      return { input, text: `Node type ${info.class_type ? quote(info.class_type) : ""} is not installed on this server.` };
    case "custom_validation_failed":
      return { input, text: error.details || error.message };
    default:
      return { input, text: [error.message, error.details].filter(Boolean).join(": ") || error.type };
  }
}

/** The prompt-level `error` of a refused `POST /prompt`, as one sentence. */
export function describePromptError(error, nodeErrorCount) {
  if (!error) return "The server refused the workflow.";
  switch (error.type) {
    case "prompt_no_outputs":
      return "Nothing to run: the workflow has no output node. Add a Save Image or Preview Image node.";
    case "prompt_outputs_failed_validation":
      return `The workflow cannot run: ${nodeErrorCount} node${nodeErrorCount === 1 ? " has" : "s have"} a problem, marked in red.`;
    case "missing_node_type":
      return `The workflow uses a node type this server does not have (${error.details || error.message}).`;
    default:
      return [error.message, error.details].filter(Boolean).join(": ");
  }
}

/** An `execution_error` event as a line for the failing node. */
export function describeExecutionError(data) {
  const kind = data.exception_type ? data.exception_type.split(".").pop() : "Error";
  return { input: null, text: `Failed while running: ${kind}: ${data.exception_message || "unknown error"}` };
}
