package spark.jobserver.japi;

import java.util.Collections;
import java.util.List;

/** Thrown by {@code verify} to reject a job: the request is answered 400 VALIDATION FAILED. */
public class JavaValidationException extends RuntimeException {
    public JavaValidationException() {
        super();
    }

    protected JavaValidationException(String message) {
        super(message);
    }

    /** The problems, one line each. */
    public List<String> problems() {
        String message = getMessage();
        return message == null ? Collections.emptyList() : Collections.singletonList(message);
    }
}
