"""The app layer: the command line (`cli`), the stage pipeline (`pipeline`), the commands (`commands`) and the
report (`report`). It imports every layer below it; nothing below imports it."""
