"""Production validation in a cleanroom: ``[validation.ENV]`` steps, the signed statement of
their outcome, and the gate that keeps ``deploy`` from running without one."""
