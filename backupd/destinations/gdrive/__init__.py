"""Google Drive destination. Importing this package is cheap; the Google libraries load only in its
modules (client, upload, destination, login), which backupd imports when a gdrive destination is used."""
