package spark.jobserver.japi;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import scala.jdk.javaapi.CollectionConverters;

/** Several validation problems. */
public class MultiJavaValidationException extends JavaValidationException {
    private final List<String> issues;

    public MultiJavaValidationException(List<String> issues) {
        super(String.join("; ", issues));
        this.issues = Collections.unmodifiableList(new ArrayList<>(issues));
    }

    /** spark-jobserver's constructor took a Scala {@code Seq}. */
    public MultiJavaValidationException(scala.collection.Seq<String> issues) {
        this(CollectionConverters.asJava(issues));
    }

    public List<String> issues() {
        return issues;
    }

    @Override
    public List<String> problems() {
        return issues;
    }
}
