package spark.jobserver.bridge;

/** What verify (or a Scala job's validate) made of a job's config: its data, or its problems. */
public final class Verified {
    private final boolean valid;
    private final Object data;
    private final String problems;
    private final String errorClass;
    private final String stack;

    private Verified(boolean valid, Object data, String problems, String errorClass, String stack) {
        this.valid = valid;
        this.data = data;
        this.problems = problems;
        this.errorClass = errorClass;
        this.stack = stack;
    }

    public static Verified valid(Object data) {
        return new Verified(true, data, "", "", "");
    }

    public static Verified invalid(String problems, String errorClass, String stack) {
        return new Verified(false, null, problems, errorClass, stack);
    }

    public boolean isValid() {
        return valid;
    }

    public Object data() {
        return data;
    }

    /** The problems, joined with "; ". */
    public String problems() {
        return problems;
    }

    public String errorClass() {
        return errorClass;
    }

    public String stack() {
        return stack;
    }
}
