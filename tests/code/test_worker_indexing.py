"""The Functions Python worker's own indexer accepts the app.

``azure-functions-runtime`` is the code that indexes the app in Azure: it imports function_app.py, finds
the one FunctionApp, and checks each function against its bindings (parameter names, return annotation,
binding directions). What fails here is what Azure reports as "0 functions found". Each run is a fresh
interpreter, as in Azure, because the app loads its model at import and may be indexed once per process.
"""

from __future__ import annotations

import pytest

from tests.app_fixtures import model_path, run_app_in_subprocess

INDEX_SCRIPT = """
import json
import types

from azure_functions_runtime import functions, loader
from azure_functions_runtime.bindings import meta

meta.load_binding_registry()  # the worker does this when the host initialises it

# The worker gets its protobuf module from the host; the indexer only reads BindingInfo's enum values
# (Direction: in 0, out 1, inout 2; DataType: undefined 0), which the library's bindings carry as ints.
protos = types.SimpleNamespace(BindingInfo=types.SimpleNamespace(out=1, inout=2, undefined=0))

indexed = loader.index_function_app("function_app.py")
registry = functions.Registry()
out = []
for function in indexed:
    info = registry.add_indexed_function(function, protos)
    trigger = function.get_trigger()
    out.append({
        "name": info.name,
        "is_http": info.is_http_func,
        "has_return": info.has_return,
        "inputs": sorted(info.input_types),
        "route": trigger.route,
        "auth_level": str(trigger.auth_level.value),
        "methods": sorted(str(m.value) for m in trigger.methods),
        "bindings": sorted((b.type, b.name, int(b.direction)) for b in function.get_bindings()),
    })
import function_app
out.append({"model_loaded": function_app.MODEL_STATE.model is not None})
print(json.dumps(out))
"""

EXPECTED = {
    "predict": ("predict", "FUNCTION"),
    "feedback": ("feedback", "FUNCTION"),
    "health": ("health", "ANONYMOUS"),
    "ui": ("ui", "ANONYMOUS"),
    "openapi": ("openapi.json", "ANONYMOUS"),
}


def _index(model: str) -> tuple[dict[str, dict], bool]:
    out = run_app_in_subprocess(INDEX_SCRIPT, MODEL_PATH=model)
    *functions, state = out
    return {f["name"]: f for f in functions}, state["model_loaded"]


@pytest.mark.slow
def test_the_worker_indexes_every_route():
    indexed, loaded = _index(str(model_path()))
    assert loaded
    assert {name: (f["route"], f["auth_level"].upper()) for name, f in indexed.items()} == EXPECTED
    for function in indexed.values():
        assert function["is_http"] and function["has_return"]
        assert function["inputs"] == ["req"]
        assert ("httpTrigger", "req", 0) in [tuple(b) for b in function["bindings"]]
        assert ("http", "$return", 1) in [tuple(b) for b in function["bindings"]]
        assert {"GET", "POST"} <= set(function["methods"])


@pytest.mark.slow
def test_the_worker_indexes_the_app_even_without_a_model(tmp_path):
    indexed, loaded = _index(str(tmp_path / "no-such-model.onnx"))
    assert not loaded
    assert set(indexed) == set(EXPECTED)
