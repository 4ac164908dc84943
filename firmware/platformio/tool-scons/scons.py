"""PlatformIO runs this file as its SCons: the scons package installed from PyPI."""

import SCons.Script

SCons.Script.main()
