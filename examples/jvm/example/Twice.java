package example;

import org.apache.spark.sql.api.java.UDF1;

/**
 * A Java UDF for a context's own jars ({@code dependent-jar-uris}): Python and SQL jobs of that
 * context register it with {@code spark.udf.registerJavaFunction("twice", "example.Twice", "bigint")}.
 */
public class Twice implements UDF1<Long, Long> {
    @Override
    public Long call(Long value) {
        return value == null ? null : value * 2;
    }
}
