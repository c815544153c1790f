/** The largest file upload `hull serve` takes unless --max-upload-mib says otherwise. */
export const DEFAULT_MAX_UPLOAD_BYTES = 1024 * 1024 * 1024;
