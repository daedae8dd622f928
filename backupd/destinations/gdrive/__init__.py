"""Google Drive destination. Importing this package is cheap; the Google libraries load only in its
modules (client, upload, destination, login), which backupd imports when a gdrive destination is used."""
from ..base import SetupCommand

SETUP_COMMANDS = {
    "drive-login": SetupCommand("authorise Google Drive access (backupctl drive-login --help)",
                                "backupd.destinations.gdrive.login:main"),
}
