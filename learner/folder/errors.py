"""The one error of the model folder room."""


class ModelDirError(ValueError):
    """A folder that is not a usable earshot model; the message names the folder and what is wrong."""
