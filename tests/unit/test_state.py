from typing import get_type_hints

from bilevel.config import RunConfig
from bilevel.graphs.state import InputState


def test_input_state_carries_every_run_config_field():
    # LangGraph drops input keys that the input schema does not declare.
    assert set(RunConfig.model_fields) <= set(get_type_hints(InputState))
