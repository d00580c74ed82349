// Renders /openapi.json as a readable reference: one card per operation, then every schema.
"use strict";

function element(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) {
    node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) {
      node.append(child);
    }
  }
  return node;
}

// Descriptions use Markdown's inline code (`like this`): backticked runs become <code>, the rest stays text
// (no HTML is ever parsed from the document).
function richText(tag, attributes, text) {
  const parts = String(text || "").split("`");
  // An unmatched backtick leaves the last part as plain text.
  return element(tag, attributes, ...parts.map((part, index) =>
    index % 2 === 1 && index < parts.length - 1 ? element("code", {}, part) : part));
}

// JSON with arrays of plain values on one line: an example's ten probabilities read as one row, not ten.
function compactJson(value, indent) {
  const pad = "  ".repeat(indent);
  if (Array.isArray(value)) {
    if (value.every((item) => item === null || typeof item !== "object")) {
      return `[${value.map((item) => JSON.stringify(item)).join(", ")}]`;
    }
    return `[\n${value.map((item) => `${pad}  ${compactJson(item, indent + 1)}`).join(",\n")}\n${pad}]`;
  }
  if (value !== null && typeof value === "object") {
    const lines = Object.entries(value).map(([key, item]) =>
      `${pad}  ${JSON.stringify(key)}: ${compactJson(item, indent + 1)}`);
    return lines.length ? `{\n${lines.join(",\n")}\n${pad}}` : "{}";
  }
  return JSON.stringify(value);
}

function refName(ref) {
  return ref.replace("#/components/schemas/", "");
}

// A compact, TypeScript-like text of a JSON schema; $refs are shown by name (listed under Schemas).
function describe(schema, indent) {
  const pad = "  ".repeat(indent);
  if (!schema) {
    return "any";
  }
  if (schema.$ref) {
    return refName(schema.$ref);
  }
  // A oneOf beside properties only constrains which of them are required (its description says so).
  if ((schema.oneOf || schema.anyOf) && !schema.properties) {
    return (schema.oneOf || schema.anyOf).map((option) => describe(option, indent)).join(" | ");
  }
  if (schema.enum) {
    return schema.enum.map((value) => JSON.stringify(value)).join(" | ");
  }
  if (schema.const !== undefined) {
    return JSON.stringify(schema.const);
  }
  const types = [].concat(schema.type || (schema.properties ? "object" : "any"));
  const limits = [];
  const limitKeys = [
    "minimum", "exclusiveMinimum", "maximum", "minLength", "minItems", "maxItems", "minProperties", "format",
  ];
  for (const key of limitKeys) {
    if (schema[key] !== undefined) {
      limits.push(`${key} ${schema[key]}`);
    }
  }
  const suffix = limits.length ? `  /* ${limits.join(", ")} */` : "";
  return types.map((type) => {
    if (type === "array") {
      return `${describe(schema.items, indent)}[]${suffix}`;
    }
    if (type === "object" && schema.properties) {
      const required = new Set(schema.required || []);
      const lines = Object.entries(schema.properties).map(([name, property]) => {
        // The schema block is monospace already: Markdown's code marks are dropped, not shown.
        const note = property.description ? `  // ${property.description.replaceAll("`", "")}` : "";
        const mark = required.has(name) ? "" : "?";
        return `${pad}  ${name}${mark}: ${describe(property, indent + 1)}${note}`;
      });
      return `{\n${lines.join("\n")}\n${pad}}`;
    }
    if (type === "object" && schema.additionalProperties) {
      return `{ [name: string]: ${describe(schema.additionalProperties, indent)} }`;
    }
    return `${type}${suffix}`;
  }).join(" | ");
}

function schemaBlock(schema) {
  return element("div", { class: "schema" }, describe(schema, 0));
}

function parametersTable(parameters) {
  const rows = parameters.map((parameter) => element("tr", {},
    element("td", {}, element("code", {}, parameter.name)),
    element("td", {}, parameter.in),
    element("td", {}, describe(parameter.schema, 0)),
    richText("td", {}, parameter.description)));
  return element("table", {},
    element("thead", {}, element("tr", {}, ...["name", "in", "type", "meaning"].map((h) => element("th", {}, h)))),
    element("tbody", {}, ...rows));
}

function contentList(content) {
  const items = Object.entries(content || {}).map(([mediaType, media]) => element("div", {},
    element("p", {}, element("code", {}, mediaType)),
    schemaBlock(media.schema),
    media.example === undefined ? null
      : element("div", { class: "schema example" },
        "Example: " + (typeof media.example === "string" ? media.example : compactJson(media.example, 0)))));
  return element("div", {}, ...items);
}

function operationCard(path, method, operation) {
  const id = operation.operationId || `${method}-${path}`;
  const card = element("section", { class: "operation", id },
    element("h2", {}, element("span", { class: `method ${method}` }, method.toUpperCase()),
      element("code", {}, path), " ", operation.summary || ""),
    operation.description ? richText("p", { class: "description" }, operation.description) : null);
  const samples = operation["x-codeSamples"] || [];
  if (samples.length) {
    card.append(element("h3", {}, "Try it with curl"),
      ...samples.map((sample) => element("pre", { class: "sample" }, element("code", {}, sample.source))));
  }
  if (operation.parameters && operation.parameters.length) {
    card.append(element("h3", {}, "Parameters"), parametersTable(operation.parameters));
  }
  if (operation.requestBody) {
    card.append(element("h3", {}, "Request body"), contentList(operation.requestBody.content));
  }
  card.append(element("h3", {}, "Responses"));
  for (const [status, response] of Object.entries(operation.responses || {})) {
    const line = richText("p", {}, ` ${response.description || ""}`);
    line.prepend(element("span", { class: "status" }, status));
    card.append(line, contentList(response.content));
  }
  return card;
}

function render(spec) {
  document.title = `${spec.info.title} - API reference`;
  document.getElementById("title").textContent = spec.info.title;
  document.getElementById("summary").replaceWith(
    richText("p", { id: "summary" }, `${spec.info.description || ""} (version ${spec.info.version})`));
  const operations = document.getElementById("operations");
  const toc = element("ul", {});
  operations.replaceChildren();
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const [method, operation] of Object.entries(item)) {
      const card = operationCard(path, method, operation);
      operations.append(card);
      toc.append(element("li", {}, element("a", { href: `#${card.id}` }, `${method.toUpperCase()} ${path}`)));
    }
  }
  document.getElementById("toc").replaceChildren(toc);
  const schemas = document.getElementById("schemas");
  for (const [name, schema] of Object.entries((spec.components || {}).schemas || {})) {
    schemas.append(element("h3", { id: `schema-${name}` }, name), schemaBlock(schema));
  }
  document.getElementById("schemas-section").hidden = false;
}

fetch("/openapi.json")
  .then((response) => {
    if (!response.ok) {
      throw new Error(`HTTP ${response.status}`);
    }
    return response.json();
  })
  .then(render)
  .catch((error) => {
    const status = document.getElementById("status");
    status.className = "error";
    status.textContent = `Could not load /openapi.json: ${error.message}`;
  });
