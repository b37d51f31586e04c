"""The node's parameters keep the types of SimConfig's defaults, and misspelt names are said.

A double parameter given an integer (``-p rate_hz:=5``, ``rate_hz: 5`` in a YAML file, ``ros2 param
set /worldfm_sim rate_hz 5``) takes it as that double; any other change of type is refused,
naming the parameter. rclpy's static typing would refuse the integer too, and would refuse a wrong
type at start-up with a traceback instead of the node's one-line error, so the node declares its
parameters with dynamic typing and keeps their types here.
"""

from __future__ import annotations

import difflib
from typing import Any, Iterable

from rclpy.parameter import Parameter

def declared_type(default: Any) -> Parameter.Type:
    """The ROS parameter type of a SimConfig default."""
    return Parameter.Type.from_parameter_value(default)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def widened(value: Any, declared: Parameter.Type) -> Any:
    """``value`` as a double (list) when it is an integer (list) for a double (list) parameter;
    else unchanged."""
    if declared == Parameter.Type.DOUBLE and _is_int(value):
        return float(value)
    if declared == Parameter.Type.DOUBLE_ARRAY and not isinstance(value, (str, bytes)) and \
            hasattr(value, "__iter__") and len(value) and all(_is_int(x) for x in value):
        return [float(x) for x in value]
    return value


def widen(param: Parameter, declared: Parameter.Type) -> Parameter:
    """``param``, with an integer (list) value for a double (list) parameter given as that double (list)."""
    value = widened(param.value, declared)
    return param if value is param.value else Parameter(param.name, declared, value)


def _kind(t: Parameter.Type) -> str:
    return t.name.lower().replace("_", " ")


def type_change(param: Parameter, declared: Parameter.Type) -> str | None:
    """The one-line reason to refuse ``param`` when its type is not the declared one (None when it is)."""
    if param.type_ == declared:
        return None
    return f"parameter {param.name}: expected a value of type {_kind(declared)}, got type {_kind(param.type_)}"


def unknown_overrides(overrides: Iterable[str], declared: Iterable[str]) -> str | None:
    """One line naming every start-up override that names no declared parameter, with the
    nearest declared names; None when there is none."""
    declared = sorted(declared)
    unknown = sorted(set(overrides) - set(declared))
    if not unknown:
        return None
    named = []
    for name in unknown:
        close = difflib.get_close_matches(name, declared, n=1)
        named.append(f"{name} (did you mean {close[0]}?)" if close else name)
    return f"ignoring parameter(s) that this node does not have: {', '.join(named)}"
