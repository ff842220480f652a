"""errors.py: the library's user errors are one family, each a one-line message."""


def test_library_errors_are_one_family():
    from rstn_core.data import DataError
    from rstn_core.errors import ConfigError, FileFormatError, RstnError, RunFolderError
    for cls in (DataError, ConfigError, FileFormatError, RunFolderError):
        assert issubclass(cls, RstnError)
    assert issubclass(ConfigError, ValueError) and issubclass(RunFolderError, FileExistsError)
    assert str(DataError("a\nb")) == "a b"
