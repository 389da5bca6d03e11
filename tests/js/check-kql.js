#!/usr/bin/env node
// Parses and analyses KQL queries with the official Kusto language service against the
// Application Insights table schemas (customEvents, requests) and prints every diagnostic.
//
// Files:  node check-kql.js infra/queries/*.kql   -> one line per diagnostic, exit 1 if any.
// Stdin (used by the tests), JSON:  {"queries": [{"name": "alert-bad-buzz", "text": "let minTexts = 50; ..."}]}
//   -> stdout JSON {"results": [{"name": "...", "diagnostics": [
//        {"code": "KS142", "severity": "Error", "message": "...", "start": 21, "length": 3}]}]}
//   exit 0 whatever the diagnostics; 2 when stdin is not such a document.
"use strict";

require("@kusto/language-service-next/bridge.js");
require("@kusto/language-service-next");

const K = globalThis.Kusto.Language;

// Columns every Application Insights table shares (classic schema, queried on the component).
const COMMON_COLUMNS = [
  "itemType:string",
  "customDimensions:dynamic",
  "operation_Name:string",
  "operation_Id:string",
  "operation_ParentId:string",
  "operation_SyntheticSource:string",
  "session_Id:string",
  "user_Id:string",
  "user_AuthenticatedId:string",
  "user_AccountId:string",
  "application_Version:string",
  "client_Type:string",
  "client_Model:string",
  "client_OS:string",
  "client_IP:string",
  "client_City:string",
  "client_StateOrProvince:string",
  "client_CountryOrRegion:string",
  "client_Browser:string",
  "cloud_RoleName:string",
  "cloud_RoleInstance:string",
  "appId:string",
  "appName:string",
  "iKey:string",
  "sdkVersion:string",
  "itemId:string",
  "itemCount:int",
];

const TABLES = {
  customEvents: ["timestamp:datetime", "name:string", "customMeasurements:dynamic", ...COMMON_COLUMNS],
  requests: [
    "timestamp:datetime",
    "id:string",
    "source:string",
    "name:string",
    "url:string",
    "success:bool",
    "resultCode:string",
    "duration:real",
    "performanceBucket:string",
    "customMeasurements:dynamic",
    ...COMMON_COLUMNS,
  ],
};

function globals() {
  const tables = Object.entries(TABLES).map(([name, columns]) =>
    K.Symbols.TableSymbol.From(`(${columns.join(", ")})`).WithName(name),
  );
  const database = new K.Symbols.DatabaseSymbol.$ctor2("ApplicationInsights", null, tables);
  return K.GlobalState.Default.WithDatabase(database);
}

function diagnose(text, state) {
  const code = K.KustoCode.ParseAndAnalyze(text, state);
  const found = code.GetDiagnostics();
  const diagnostics = [];
  for (let i = 0; i < found.Count; i++) {
    const d = found.getItem(i);
    diagnostics.push({ code: d.Code, severity: d.Severity, message: d.Message, start: d.Start, length: d.Length });
  }
  return diagnostics;
}

function checkFiles(paths) {
  const fs = require("node:fs");
  const state = globals();
  let count = 0;
  for (const path of paths) {
    const text = fs.readFileSync(path, "utf8");
    for (const d of diagnose(text, state)) {
      const line = text.slice(0, d.start).split("\n").length;
      process.stdout.write(`${path}:${line}: ${d.severity} ${d.code}: ${d.message}\n`);
      count += 1;
    }
  }
  process.stdout.write(`${paths.length} queries checked, ${count} diagnostics\n`);
  process.exit(count === 0 ? 0 : 1);
}

function checkStdin() {
  let request;
  try {
    request = JSON.parse(require("node:fs").readFileSync(0, "utf8"));
  } catch (error) {
    process.stderr.write(`check-kql: stdin is not JSON: ${error.message}\n`);
    process.exit(2);
  }
  if (!request || !Array.isArray(request.queries)) {
    process.stderr.write('check-kql: expected {"queries": [{"name": ..., "text": ...}]}\n');
    process.exit(2);
  }
  const state = globals();
  const results = request.queries.map((query) => ({
    name: String(query.name),
    diagnostics: diagnose(String(query.text), state),
  }));
  process.stdout.write(JSON.stringify({ results }) + "\n");
}

if (process.argv.length > 2) {
  checkFiles(process.argv.slice(2));
} else {
  checkStdin();
}
